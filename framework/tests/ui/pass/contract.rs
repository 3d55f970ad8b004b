//! A contract job registers without a handler (what a producer links) and
//! takes the one `handler!` binds; `Registry::builder` names jobs of both
//! kinds for a test.

use warren::Registry;

/// What a contract crate holds: job types, no handlers.
mod contracts {
    use warren::prelude::*;

    #[derive(Debug, Serialize, Deserialize, Job)]
    #[job(contract, queue = "images", retries = 5)]
    pub struct ResizeImage {
        pub path: String,
    }

    #[derive(Debug, Serialize, Deserialize, Job)]
    #[job(contract, name = "send_email", queue = "emails")]
    pub struct SendEmail {
        pub to: String,
    }
}

/// What the worker crate holds: the handlers.
mod worker {
    use crate::contracts::ResizeImage;
    use warren::{JobContext, JobError};

    pub async fn resize_image(job: ResizeImage, ctx: &JobContext) -> Result<(), JobError> {
        assert_eq!((job.path.as_str(), ctx.job_name()), ("cat.png", "resize_image"));
        Ok(())
    }

    warren::handler!(ResizeImage => resize_image);
}

fn main() {
    let registry = Registry::from_inventory().expect("no conflicts");
    let resize = registry.get("resize_image").expect("registered");
    assert!(resize.is_contract() && resize.has_handler());
    assert!(resize.handler().unwrap().ends_with("::worker::resize_image"), "{resize:?}");
    assert_eq!((resize.queue, resize.options.retries), ("images", Some(5)));
    assert!(resize.type_name.ends_with("::contracts::ResizeImage"), "{resize:?}");

    let email = registry.get("send_email").expect("registered without a handler");
    assert!(email.is_contract() && !email.has_handler());
    let missing: Vec<_> = registry.missing_handlers(&["emails", "images"]).iter().map(|job| job.name).collect();
    assert_eq!(missing, ["send_email"]);

    let built = Registry::builder().contract::<contracts::ResizeImage>().build().expect("bound");
    assert_eq!(built.jobs().len(), 1);
    let error = Registry::builder().contract::<contracts::SendEmail>().build().expect_err("no handler");
    assert!(error.to_string().contains("is a contract with no handler"), "{error}");
}
