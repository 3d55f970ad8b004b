//! Jobs declared in a module are registered under their full Rust path, and a
//! raw identifier loses its `r#` in the default name.

use warren::Registry;

mod jobs {
    use warren::prelude::*;

    #[derive(Debug, Serialize, Deserialize, Job)]
    #[job(name = "send_email", queue = "emails")]
    pub(super) struct SendEmail {
        pub(super) to: String,
    }

    impl Handler for SendEmail {
        async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
            Ok(())
        }
    }

    #[derive(Debug, Serialize, Deserialize, Job)]
    #[allow(non_camel_case_types)] // to show that `r#` is dropped
    pub(super) struct r#match;

    impl Handler for r#match {
        async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
            Ok(())
        }
    }
}

#[test]
fn jobs_in_a_module_register_under_their_full_path() {
    let registry = Registry::from_inventory().expect("no conflicts");

    let send_email = registry.get("send_email").expect("SendEmail is registered");
    assert_eq!(send_email.queue, "emails");
    assert!(
        send_email.type_name.ends_with("::in_module::jobs::SendEmail"),
        "{}",
        send_email.type_name
    );
    let r#match = registry.get("match").expect("r#match is registered as `match`");
    assert!(
        r#match.type_name.ends_with("::in_module::jobs::match"),
        "{}",
        r#match.type_name
    );
}
