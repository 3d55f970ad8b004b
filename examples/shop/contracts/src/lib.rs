//! The shop's job types, shared by the web service that enqueues them
//! (`shop-api`) and the worker that runs them (`shop-worker`): declared as
//! contracts, so the service compiles none of the handlers.

use warren::prelude::*;

/// Emails the receipt of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Job)]
#[job(contract, queue = "receipts", retries = 5, timeout = "30s")]
pub struct SendReceipt {
    /// The order.
    pub order_id: u64,
    /// Where to send the receipt.
    pub email: String,
}
