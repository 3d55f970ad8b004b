//! A contract job registers without a handler (what a producer links) and
//! takes the one `handler!` binds; `Registry::builder` names jobs of both
//! kinds for a test.

use warren::Registry;

/// What a contract crate holds: job types, no handlers.
mod contracts {
    use warren::prelude::*;

    #[derive(Debug, Serialize, Deserialize, Job)]
    #[job(contract, queue = "images", retries = 5)]
    pub(super) struct ResizeImage {
        pub(super) path: String,
    }

    #[derive(Debug, Serialize, Deserialize, Job)]
    #[job(contract, name = "send_newsletter", queue = "newsletters")]
    pub(super) struct SendNewsletter {
        pub(super) to: String,
    }
}

/// What the worker crate holds: the handlers.
mod worker {
    use super::contracts::ResizeImage;
    use warren::{JobContext, JobError};

    pub(super) async fn resize_image(job: ResizeImage, ctx: &JobContext) -> Result<(), JobError> {
        assert_eq!((job.path.as_str(), ctx.job_name()), ("cat.png", "resize_image"));
        Ok(())
    }

    warren::handler!(ResizeImage => resize_image);
}

#[test]
fn a_contract_job_registers_without_a_handler_and_takes_the_one_bound() {
    let registry = Registry::from_inventory().expect("no conflicts");
    let resize = registry.get("resize_image").expect("registered");
    assert!(resize.is_contract() && resize.has_handler());
    assert!(
        resize.handler().unwrap().ends_with("::worker::resize_image"),
        "{resize:?}"
    );
    assert_eq!((resize.queue, resize.options.retries), ("images", Some(5)));
    assert!(resize.type_name.ends_with("::contracts::ResizeImage"), "{resize:?}");

    let newsletter = registry.get("send_newsletter").expect("registered without a handler");
    assert!(newsletter.is_contract() && !newsletter.has_handler());
    let missing: Vec<_> = registry
        .missing_handlers(&["newsletters", "images"])
        .iter()
        .map(|job| job.name)
        .collect();
    assert_eq!(missing, ["send_newsletter"]);

    let built = Registry::builder()
        .contract::<contracts::ResizeImage>()
        .build()
        .expect("bound");
    assert_eq!(built.jobs().len(), 1);
    let error = Registry::builder()
        .contract::<contracts::SendNewsletter>()
        .build()
        .expect_err("no handler");
    assert!(error.to_string().contains("is a contract with no handler"), "{error}");
}
