//! A worker binary with two jobs of one name, which must refuse to start.

mod billing {
    use warren::prelude::*;

    #[derive(Debug, Serialize, Deserialize, Job)]
    pub(crate) struct SendEmail;

    impl Handler for SendEmail {
        async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
            Ok(())
        }
    }
}

mod marketing {
    use warren::prelude::*;

    #[derive(Debug, Serialize, Deserialize, Job)]
    pub(crate) struct SendEmail;

    impl Handler for SendEmail {
        async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
            Ok(())
        }
    }
}

warren::main!();
