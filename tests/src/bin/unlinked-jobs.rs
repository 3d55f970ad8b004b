//! A worker binary whose crate depends on a job library but never names it:
//! the library is not linked, its jobs are not registered, and `work` must
//! say why.

warren::main!();
