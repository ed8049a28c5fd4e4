//! [`Options`]: a typed map of values that jobs can read.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// A typed map with one value per type: workerpoolxt's `map[string]interface{}`,
/// checked by the compiler.
///
/// Options are set for a whole pool ([`Builder::default_options`](crate::Builder::default_options))
/// or per job ([`Job::options`](crate::Job::options)), and read inside a job
/// through [`JobContext::options`](crate::JobContext::options). A job's own
/// options **replace** the pool's defaults; the two are never merged.
///
/// Cloning is cheap (one reference count); [`insert`](Self::insert) on a
/// shared map copies it first (copy on write).
///
/// # Examples
///
/// ```
/// use workerpoolxt::Options;
///
/// #[derive(Debug, PartialEq)]
/// struct BaseUrl(&'static str);
///
/// let opts = Options::new().with(BaseUrl("https://example.com")).with(3u32);
/// assert_eq!(opts.get::<BaseUrl>(), Some(&BaseUrl("https://example.com")));
/// assert_eq!(opts.get::<u32>(), Some(&3));
/// assert_eq!(opts.get::<String>(), None);
/// ```
#[derive(Clone, Default)]
pub struct Options {
    /// `None` while empty: most jobs carry no options, and an empty map
    /// then costs no allocation.
    map: Option<Arc<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>>,
}

impl Options {
    /// An empty map.
    pub fn new() -> Options {
        Options::default()
    }

    /// Adds `value` (replacing any value of the same type) and returns the map.
    pub fn with<V: Any + Send + Sync>(mut self, value: V) -> Options {
        self.insert(value);
        self
    }

    /// Adds `value`, replacing any value of the same type.
    pub fn insert<V: Any + Send + Sync>(&mut self, value: V) {
        Arc::make_mut(self.map.get_or_insert_with(Default::default))
            .insert(TypeId::of::<V>(), Arc::new(value));
    }

    /// The value of type `V`, if there is one.
    pub fn get<V: Any + Send + Sync>(&self) -> Option<&V> {
        self.map
            .as_ref()?
            .get(&TypeId::of::<V>())
            .and_then(|v| v.downcast_ref::<V>())
    }

    /// Whether a value of type `V` is present.
    pub fn contains<V: Any + Send + Sync>(&self) -> bool {
        self.map
            .as_ref()
            .is_some_and(|m| m.contains_key(&TypeId::of::<V>()))
    }

    /// Removes the value of type `V`; returns whether there was one.
    pub fn remove<V: Any + Send + Sync>(&mut self) -> bool {
        if !self.contains::<V>() {
            return false;
        }
        let Some(map) = self.map.as_mut() else {
            return false;
        };
        Arc::make_mut(map).remove(&TypeId::of::<V>()).is_some()
    }

    /// The number of values.
    pub fn len(&self) -> usize {
        self.map.as_ref().map_or(0, |m| m.len())
    }

    /// Whether the map holds no value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}
