warren::main!(job = [my_jobs]);
