//! Named handlers: the [`Handler`] trait, what a run sees ([`JobContext`]),
//! and the registry a worker looks handlers up in.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::envelope::JobId;
use crate::error::Error;
use crate::name::{validate_name, NameKind};

/// A job kind that can cross machines: a name, serde arguments and output,
/// and the code that runs it.
///
/// Delivery is **at least once**: a job whose worker died, lost its lease or
/// was stopped past its grace period runs again, maybe on another machine,
/// and a failed attempt is retried. **Handlers must be idempotent**: use
/// [`JobContext::idempotency_key`] to make an effect happen once (a unique
/// key in your database, a payment provider's idempotency header), and
/// [`JobContext::attempt`] to tell a first run from a retry.
///
/// # Examples
///
/// ```
/// use workerpoolxt_durable::{Handler, JobContext};
///
/// struct Add;
/// impl Handler for Add {
///     const NAME: &'static str = "add";
///     type Args = (i64, i64);
///     type Output = i64;
///     type Error = std::convert::Infallible;
///     async fn run(&self, (a, b): (i64, i64), _ctx: JobContext) -> Result<i64, Self::Error> {
///         Ok(a + b)
///     }
/// }
///
/// let job = workerpoolxt_durable::NewJob::new::<Add>(&(1, 2)).unwrap();
/// assert_eq!(job.handler(), "add");
/// ```
pub trait Handler: Send + Sync + 'static {
    /// The name jobs carry to find this handler; see
    /// [`validate_name`](crate::validate_name) for what a name may hold.
    const NAME: &'static str;
    /// The arguments, stored as JSON.
    type Args: Serialize + DeserializeOwned + Send + 'static;
    /// The output, stored as JSON in the job's record.
    type Output: Serialize + DeserializeOwned + Send + 'static;
    /// The error; its `Display` text is stored as the job's last error.
    type Error: fmt::Display + Send + 'static;

    /// Runs one attempt. An `Err` is retried while attempts remain.
    ///
    /// The future is dropped (cancelled) if the attempt times out, the job is
    /// cancelled, the worker loses its lease, or a stop's grace period ends.
    fn run(
        &self,
        args: Self::Args,
        ctx: JobContext,
    ) -> impl Future<Output = Result<Self::Output, Self::Error>> + Send;
}

/// What a handler's run knows about its job.
#[derive(Debug, Clone)]
pub struct JobContext {
    pub(crate) id: JobId,
    pub(crate) queue: String,
    pub(crate) name: Option<String>,
    pub(crate) attempt: u32,
    pub(crate) max_attempts: u32,
    pub(crate) idempotency_key: String,
    pub(crate) pool: workerpoolxt::JobContext,
}

impl JobContext {
    /// The job's id.
    pub fn id(&self) -> &JobId {
        &self.id
    }

    /// The queue it came from.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// The job's name, if it was given one.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// This attempt's number: 1 for the first delivery. A delivery after a
    /// worker died counts too.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Attempts allowed in all.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The key to make the job's effects idempotent.
    pub fn idempotency_key(&self) -> &str {
        &self.idempotency_key
    }

    /// The context of the [`workerpoolxt::Pool`] job that runs this attempt
    /// (its cancel token and deadline).
    pub fn pool_context(&self) -> &workerpoolxt::JobContext {
        &self.pool
    }
}

/// Why an attempt failed, and whether another attempt can help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) message: String,
    pub(crate) retry: bool,
}

impl Failure {
    pub(crate) fn retry(message: String) -> Failure {
        Failure {
            message,
            retry: true,
        }
    }

    pub(crate) fn fatal(message: String) -> Failure {
        Failure {
            message,
            retry: false,
        }
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// One attempt's result: the output as JSON, or why not.
pub(crate) type Attempt = Result<String, Failure>;

/// A handler with its types erased: JSON in, JSON out.
trait Erased: Send + Sync {
    fn call(&self, payload: &str, ctx: JobContext) -> BoxFuture<Attempt>;
}

struct Typed<H>(Arc<H>);

impl<H: Handler> Erased for Typed<H> {
    fn call(&self, payload: &str, ctx: JobContext) -> BoxFuture<Attempt> {
        let args: H::Args = match serde_json::from_str(payload) {
            Ok(args) => args,
            Err(e) => {
                let msg = format!(
                    "payload does not decode as the Args of handler `{}`: {e}",
                    H::NAME
                );
                return Box::pin(std::future::ready(Err(Failure::fatal(msg))));
            }
        };
        let handler = Arc::clone(&self.0);
        Box::pin(async move {
            let output = handler.run(args, ctx).await;
            let output = output.map_err(|e| Failure::retry(e.to_string()))?;
            serde_json::to_string(&output).map_err(|e| {
                Failure::fatal(format!(
                    "output of handler `{}` does not encode: {e}",
                    H::NAME
                ))
            })
        })
    }
}

/// The handlers a worker serves, by name.
#[derive(Clone, Default)]
pub(crate) struct Handlers {
    by_name: BTreeMap<String, Arc<dyn Erased>>,
}

impl Handlers {
    pub(crate) fn register<H: Handler>(&mut self, handler: H) -> Result<(), Error> {
        validate_name(NameKind::Handler, H::NAME)?;
        if self.by_name.contains_key(H::NAME) {
            return Err(Error::Config(format!(
                "handler `{}` is registered twice",
                H::NAME
            )));
        }
        self.by_name
            .insert(H::NAME.to_string(), Arc::new(Typed(Arc::new(handler))));
        Ok(())
    }

    /// Starts an attempt of the named handler; an unknown name fails the job
    /// for good.
    pub(crate) fn call(&self, handler: &str, payload: &str, ctx: JobContext) -> BoxFuture<Attempt> {
        match self.by_name.get(handler) {
            Some(h) => h.call(payload, ctx),
            None => {
                let msg = format!(
                    "unknown handler `{}`: this worker serves {:?}",
                    handler.escape_debug(),
                    self.names()
                );
                Box::pin(std::future::ready(Err(Failure::fatal(msg))))
            }
        }
    }

    pub(crate) fn names(&self) -> Vec<&str> {
        self.by_name.keys().map(String::as_str).collect()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

impl fmt::Debug for Handlers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.by_name.keys()).finish()
    }
}
