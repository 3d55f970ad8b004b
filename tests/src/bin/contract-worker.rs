//! A worker for the contract crate `warren-test-contracts`, which declares
//! its jobs without handlers: the handler of `Thumbnail` is bound here.
//! `Archive` has none, so `work` must be told `--queues thumbnails`.

use warren::prelude::*;
use warren_test_contracts::Thumbnail;

/// Who ran the job, from the setup hook.
#[derive(Debug)]
struct Label(&'static str);

async fn setup() -> Result<State, std::convert::Infallible> {
    Ok(State::new().with(Label("contract-worker")))
}

async fn make_thumbnail(job: Thumbnail, ctx: &JobContext) -> Result<(), JobError> {
    let Label(by) = ctx.state()?;
    println!(
        "thumbnail path={} width={} job={} attempt={} by={by}",
        job.path,
        job.width,
        ctx.job_name(),
        ctx.attempt()
    );
    Ok(())
}

warren::handler!(Thumbnail => make_thumbnail);

warren::main!(setup = setup, jobs = [warren_test_contracts]);
