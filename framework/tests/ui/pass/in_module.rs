//! Jobs declared in a module are registered under their full Rust path, and a
//! raw identifier loses its `r#` in the default name.

use warren::Registry;

mod jobs {
    use warren::prelude::*;

    #[derive(Debug, Serialize, Deserialize, Job)]
    #[job(name = "send_email", queue = "emails")]
    pub struct SendEmail {
        pub to: String,
    }

    impl Handler for SendEmail {
        async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
            Ok(())
        }
    }

    #[derive(Debug, Serialize, Deserialize, Job)]
    #[allow(non_camel_case_types)] // to show that `r#` is dropped
    pub struct r#match;

    impl Handler for r#match {
        async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
            Ok(())
        }
    }
}

fn main() {
    let registry = Registry::from_inventory().expect("two jobs, no conflicts");
    let names: Vec<_> = registry.jobs().iter().map(|job| job.name).collect();
    assert_eq!(names, ["match", "send_email"]);

    let send_email = registry.get("send_email").expect("SendEmail is registered");
    assert_eq!(send_email.queue, "emails");
    assert!(
        send_email.type_name.ends_with("::jobs::SendEmail"),
        "{}",
        send_email.type_name
    );
    let r#match = registry.get("match").expect("r#match is registered");
    assert!(r#match.type_name.ends_with("::jobs::match"), "{}", r#match.type_name);
}
