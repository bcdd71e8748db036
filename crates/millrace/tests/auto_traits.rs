//! Auto traits of the public types, checked at compile time: handles and submitters can be
//! shared across threads, a running pipeline, its outputs and its responses can be moved to
//! another thread, and reports and errors can be sent anywhere.

use millrace::{
    BuildError, Finished, Handle, ItemError, ItemId, Outcome, Outputs, Pipeline, PipelineBuilder,
    Report, Responses, RunError, Running, Stage, Status, SubmitError, Submitter,
};

fn send<T: Send>() {}
fn sync<T: Sync>() {}
fn clone<T: Clone>() {}

#[test]
fn public_types_have_the_auto_traits_their_use_needs() {
    send::<Handle>();
    sync::<Handle>();
    clone::<Handle>();

    send::<Running<u64>>();
    send::<Finished<Vec<u64>>>();

    send::<Submitter<u64>>();
    sync::<Submitter<u64>>();
    clone::<Submitter<u64>>();
    send::<SubmitError<u64>>();

    send::<Report>();
    sync::<Report>();
    clone::<Report>();

    send::<Responses<u64>>();
    send::<Outcome<u64>>();
    send::<Status>();
    sync::<Status>();
    send::<Outputs<u64>>();

    send::<RunError>();
    sync::<RunError>();
    send::<BuildError>();
    sync::<BuildError>();
    send::<ItemError>();
    sync::<ItemError>();
    send::<ItemId>();

    send::<Pipeline<u64>>();
    send::<PipelineBuilder<u64>>();
    send::<Stage<u64, u64>>();
}
