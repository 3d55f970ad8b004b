//! A worker binary whose jobs are all in a library it names only in
//! `main!(jobs = [...])`: that is enough for the library to be linked and
//! its jobs registered. It binds no handler to them.

warren::main!(jobs = [warren_test_contracts]);
