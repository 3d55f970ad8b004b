warren::main!(jobs = [no_such_crate]);
