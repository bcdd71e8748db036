//! Consuming fallible stages: [`Stage::try_map_owned`](crate::Stage::try_map_owned) moves
//! each item into its closure (a parse that takes a `Vec<u8>` and keeps it, say), and an
//! error hands the item back in a [`Rejected`], so retries and dead letters still get it
//! whole and nothing is cloned.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::error::{panic_message, BoxError, ItemErrorKind};

use super::logic::{Logic, Step};

/// Why a consuming fallible stage refused an item, with the item handed back.
///
/// # Examples
///
/// ```
/// use millrace::{Pipeline, Rejected, Stage};
///
/// // The bytes move into the `String`; invalid UTF-8 hands them back.
/// let finished = Pipeline::source(vec![b"ok".to_vec(), vec![0xff], b"fine".to_vec()])
///     .stage(
///         Stage::try_map_owned("utf8", |bytes: Vec<u8>| {
///             String::from_utf8(bytes).map_err(|e| {
///                 let why = e.utf8_error();
///                 Rejected::new(e.into_bytes(), why)
///             })
///         })
///         .ordered(),
///     )
///     .collect()
///     .run()?;
/// assert_eq!(finished.output, vec!["ok".to_owned(), "fine".to_owned()]);
/// assert_eq!(finished.report.failed(), 1);
/// # Ok::<(), millrace::RunError>(())
/// ```
pub struct Rejected<T> {
    item: Option<T>,
    error: BoxError,
}

impl<T> Rejected<T> {
    /// The item could not be processed because of `error`; here it is back, to be retried
    /// or dead-lettered.
    pub fn new(item: T, error: impl Into<BoxError>) -> Self {
        Rejected {
            item: Some(item),
            error: error.into(),
        }
    }

    /// The item failed and is gone (the closure consumed it): it cannot be retried, and a
    /// dead letter gets no item.
    pub fn consumed(error: impl Into<BoxError>) -> Self {
        Rejected {
            item: None,
            error: error.into(),
        }
    }

    /// The error.
    pub fn error(&self) -> &BoxError {
        &self.error
    }

    /// The item handed back, if it was.
    pub fn into_item(self) -> Option<T> {
        self.item
    }
}

impl<T> fmt::Debug for Rejected<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rejected")
            .field("error", &self.error)
            .field("item_back", &self.item.is_some())
            .finish()
    }
}

/// The logic of `try_map_owned`: `f` takes the item; an error may hand it back.
pub(crate) struct TryOwnedLogic<F, U> {
    pub(crate) f: Arc<F>,
    pub(crate) _out: PhantomData<fn() -> U>,
}

impl<T, U, F> Logic<T, U> for TryOwnedLogic<F, U>
where
    F: Fn(T) -> Result<U, Rejected<T>> + Send + Sync + 'static,
    T: Send + 'static,
    U: 'static,
{
    const AT_MOST_ONE: bool = true;

    #[inline]
    fn call(&mut self, item: T, out: &mut Vec<U>) -> Step<T> {
        // A panic consumes the item: caught here so that it fails like an error would, with
        // nothing handed back.
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (self.f)(item))) {
            Ok(Ok(u)) => {
                out.push(u);
                Step::Emitted(1)
            }
            Ok(Err(Rejected { item, error })) => {
                Step::Failed(item, ItemErrorKind::Failed(Arc::from(error)))
            }
            Err(payload) => Step::Failed(None, ItemErrorKind::Panicked(panic_message(&*payload))),
        }
    }
}
