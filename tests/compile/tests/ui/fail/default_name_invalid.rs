use warren::prelude::*;

// The name made from a non-ASCII type name is not a valid job name.
#[derive(Serialize, Deserialize, Job)]
struct Größe {
    width: u32,
}

impl Handler for Größe {
    async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

fn main() {}
