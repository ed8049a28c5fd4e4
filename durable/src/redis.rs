//! The Redis backend: a hash per job, sorted sets per queue, one Lua script
//! per step.
//!
//! Keys (the queue name is validated first, so it holds no pattern or
//! separator of its own): `wpxt:job:{id}` (a hash: the envelope, the state,
//! the lease, the record), `wpxt:q:{queue}:due` (queued jobs by `run_at`),
//! `wpxt:q:{queue}:leased` (running jobs by lease expiry),
//! `wpxt:q:{queue}:{succeeded,dead,cancelled}` (ended jobs by record
//! expiry) and `wpxt:queues` (the queue names, for the purge). Each step is
//! one script, so it is atomic; every value is a script argument, never
//! script text. Times come from the server's `TIME`. Enqueues and ends
//! `PUBLISH` on `wpxt:jobs`; a listener thread turns that into wake-ups.
//!
//! Scripts reach keys they compute, so this backend serves a single Redis
//! server (or a primary with replicas), not Redis Cluster.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use redis::{Connection, FromRedisValue, Script, Value};

use crate::backend::{
    Ack, Backend, Counts, End, Lease, Notifier, Record, Status, DEFAULT_RECORD_TTL,
};
use crate::clock::{dur_ms, now_ms};
use crate::envelope::{Envelope, JobId};
use crate::error::Error;
use crate::name::{validate_name, NameKind};

const CHANNEL: &str = "wpxt:jobs";

const PRELUDE: &str = r#"
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function num(x) return string.format('%.0f', x) end
local function qkey(q, part) return 'wpxt:q:' .. q .. ':' .. part end
local function jkey(id) return 'wpxt:job:' .. id end
local function held(k, token, now)
  local f = redis.call('HMGET', k, 'state', 'lease_token', 'lease_until')
  return f[1] == 'running' and f[2] == token and tonumber(f[3]) >= now
end
local function ended(k, q, id, set, now, ttl)
  local expires = now + ttl
  redis.call('HSET', k, 'finished_at', num(now), 'expires_at', num(expires), 'lease_worker', '')
  redis.call('ZREM', qkey(q, 'leased'), id)
  redis.call('ZREM', qkey(q, 'due'), id)
  redis.call('ZADD', qkey(q, set), expires, id)
  redis.call('PEXPIREAT', k, num(expires))
end
"#;

const ENQUEUE: &str = r#"
local k = jkey(ARGV[1])
if redis.call('EXISTS', k) == 1 then return redis.error_reply('a job with this id exists') end
redis.call('HSET', k, unpack(ARGV, 4))
redis.call('ZADD', qkey(ARGV[2], 'due'), tonumber(ARGV[3]), ARGV[1])
redis.call('SADD', 'wpxt:queues', ARGV[2])
redis.call('PUBLISH', 'wpxt:jobs', ARGV[2])
return 1
"#;

const CLAIM: &str = r#"
local q, worker, max, lease, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local now = now_ms()
for _, id in ipairs(redis.call('ZRANGEBYSCORE', qkey(q, 'leased'), '-inf', '(' .. num(now))) do
  local k = jkey(id)
  local f = redis.call('HMGET', k, 'attempts', 'max_attempts', 'lease_until')
  redis.call('ZREM', qkey(q, 'leased'), id)
  if tonumber(f[1]) >= tonumber(f[2]) then
    redis.call('HSET', k, 'state', 'dead', 'error', 'the lease of attempt ' .. f[1] .. ' of ' .. f[2] ..
      ' expired (its worker died or stalled); no attempt is left')
    ended(k, q, id, 'dead', now, ttl)
  else
    redis.call('HSET', k, 'state', 'queued', 'lease_worker', '')
    redis.call('ZADD', qkey(q, 'due'), tonumber(f[3]), id)
  end
end
local out = { num(now) }
for _, id in ipairs(redis.call('ZRANGEBYSCORE', qkey(q, 'due'), '-inf', num(now), 'LIMIT', 0, max)) do
  local k = jkey(id)
  local f = redis.call('HMGET', k, 'run_at', 'enqueued_at')
  redis.call('ZREM', qkey(q, 'due'), id)
  redis.call('HINCRBY', k, 'lease_token', 1)
  redis.call('HINCRBY', k, 'attempts', 1)
  redis.call('HSET', k, 'state', 'running', 'lease_worker', worker, 'lease_until', num(now + lease),
    'queued_ms', num(math.max(0, now - math.max(tonumber(f[1]), tonumber(f[2])))))
  redis.call('ZADD', qkey(q, 'leased'), now + lease, id)
  out[#out + 1] = redis.call('HGETALL', k)
end
return out
"#;

const RENEW: &str = r#"
local k, now = jkey(ARGV[1]), now_ms()
if not held(k, ARGV[2], now) then return 0 end
local until_ms = now + tonumber(ARGV[3])
redis.call('HSET', k, 'lease_until', num(until_ms))
redis.call('ZADD', qkey(redis.call('HGET', k, 'queue'), 'leased'), until_ms, ARGV[1])
return 1
"#;

const FINISH: &str = r#"
local id, token, kind, ttl = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local k, now = jkey(id), now_ms()
if not held(k, token, now) then return 0 end
local q = redis.call('HGET', k, 'queue')
if kind == 'succeeded' then
  redis.call('HSET', k, 'state', 'succeeded', 'output', ARGV[5], 'run_ms', ARGV[6])
  redis.call('HDEL', k, 'error')
  ended(k, q, id, 'succeeded', now, ttl)
elseif kind == 'dead' then
  redis.call('HSET', k, 'state', 'dead', 'error', ARGV[5], 'run_ms', ARGV[6])
  ended(k, q, id, 'dead', now, ttl)
elseif kind == 'retry' then
  redis.call('HSET', k, 'state', 'queued', 'error', ARGV[5], 'run_ms', ARGV[6], 'run_at', ARGV[7],
    'lease_worker', '', 'lease_until', '')
  redis.call('ZREM', qkey(q, 'leased'), id)
  redis.call('ZADD', qkey(q, 'due'), tonumber(ARGV[7]), id)
else
  redis.call('HSET', k, 'state', 'queued', 'run_at', num(now), 'lease_worker', '', 'lease_until', '')
  redis.call('HINCRBY', k, 'attempts', -1)
  redis.call('ZREM', qkey(q, 'leased'), id)
  redis.call('ZADD', qkey(q, 'due'), now, id)
end
redis.call('PUBLISH', 'wpxt:jobs', q)
return 1
"#;

const CANCEL: &str = r#"
local k = jkey(ARGV[1])
local state = redis.call('HGET', k, 'state')
if state ~= 'queued' and state ~= 'running' then return 0 end
local q = redis.call('HGET', k, 'queue')
redis.call('HSET', k, 'state', 'cancelled')
ended(k, q, ARGV[1], 'cancelled', now_ms(), tonumber(ARGV[2]))
redis.call('PUBLISH', 'wpxt:jobs', q)
return 1
"#;

const COUNTS: &str = r#"
local q, now = ARGV[1], now_ms()
local live = function(set) return redis.call('ZCOUNT', qkey(q, set), num(now), '+inf') end
return {
  redis.call('ZCOUNT', qkey(q, 'due'), '-inf', num(now)),
  redis.call('ZCOUNT', qkey(q, 'due'), '(' .. num(now), '+inf'),
  redis.call('ZCARD', qkey(q, 'leased')),
  live('succeeded'), live('dead'), live('cancelled'),
}
"#;

const DEAD: &str = r#"
local out = {}
local ids = redis.call('ZREVRANGEBYSCORE', qkey(ARGV[1], 'dead'), '+inf', num(now_ms()), 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do out[#out + 1] = redis.call('HGETALL', jkey(id)) end
return out
"#;

const PURGE: &str = r#"
local now, n = now_ms(), 0
for _, q in ipairs(redis.call('SMEMBERS', 'wpxt:queues')) do
  for _, set in ipairs({ 'succeeded', 'dead', 'cancelled' }) do
    for _, id in ipairs(redis.call('ZRANGEBYSCORE', qkey(q, set), '-inf', '(' .. num(now))) do
      redis.call('DEL', jkey(id))
      n = n + 1
    end
    redis.call('ZREMRANGEBYSCORE', qkey(q, set), '-inf', '(' .. num(now))
  end
end
return n
"#;

/// The scripts, loaded once per backend.
struct Scripts {
    enqueue: Script,
    claim: Script,
    renew: Script,
    finish: Script,
    cancel: Script,
    counts: Script,
    dead: Script,
    purge: Script,
}

impl Scripts {
    fn new() -> Scripts {
        let script = |body: &str| Script::new(&format!("{PRELUDE}{body}"));
        Scripts {
            enqueue: script(ENQUEUE),
            claim: script(CLAIM),
            renew: script(RENEW),
            finish: script(FINISH),
            cancel: script(CANCEL),
            counts: script(COUNTS),
            dead: script(DEAD),
            purge: script(PURGE),
        }
    }
}

/// How many connections a backend opens.
const CONNECTIONS: usize = 4;

/// A queue store in a Redis server.
///
/// The URL (`redis://[user:password@]host:port/db`) is kept only to
/// reconnect the listener, and never shown: not in errors, not in `Debug`.
///
/// # Examples
///
/// ```no_run
/// use workerpoolxt_durable::{Client, RedisBackend};
///
/// let backend = RedisBackend::connect("redis://127.0.0.1:6379/").unwrap();
/// let client = Client::new(backend);
/// # let _ = client;
/// ```
pub struct RedisBackend {
    conns: Vec<Mutex<Connection>>,
    next: AtomicUsize,
    scripts: Scripts,
    notifier: Arc<Notifier>,
    listening: Arc<AtomicBool>,
    ttl_ms: i64,
}

impl RedisBackend {
    /// Connects (4 connections and a listener thread). Blocks.
    ///
    /// TLS is turned on by the URL: `rediss://` connects with TLS and
    /// verifies the server's certificate against the system's roots; it
    /// needs the `redis-tls` feature (without it such a URL is refused).
    pub fn connect(url: &str) -> Result<RedisBackend, Error> {
        if url.starts_with("rediss://") && !cfg!(feature = "redis-tls") {
            return Err(Error::Config(
                "the URL asks for TLS (rediss://): build with the `redis-tls` feature".into(),
            ));
        }
        let secret = Secret::of(url);
        let client =
            redis::Client::open(url).map_err(|_| Error::Backend("invalid Redis URL".into()))?;
        let mut conns = Vec::with_capacity(CONNECTIONS);
        for _ in 0..CONNECTIONS {
            conns.push(Mutex::new(
                client.get_connection().map_err(|e| secret.error(&e))?,
            ));
        }
        let notifier = Arc::new(Notifier::new());
        let listening = Arc::new(AtomicBool::new(true));
        spawn_listener(client, Arc::clone(&notifier), Arc::clone(&listening));
        Ok(RedisBackend {
            conns,
            next: AtomicUsize::new(0),
            scripts: Scripts::new(),
            notifier,
            listening,
            ttl_ms: dur_ms(DEFAULT_RECORD_TTL),
        })
    }

    /// Keeps the records of ended jobs for `ttl` after they end (default:
    /// [`DEFAULT_RECORD_TTL`]).
    pub fn record_ttl(mut self, ttl: Duration) -> RedisBackend {
        self.ttl_ms = dur_ms(ttl);
        self
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        for c in &self.conns {
            if let Ok(c) = c.try_lock() {
                return c;
            }
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len();
        self.conns[i].lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for RedisBackend {
    fn drop(&mut self) {
        self.listening.store(false, Ordering::SeqCst);
    }
}

impl fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackend")
            .field("connections", &self.conns.len())
            .finish_non_exhaustive()
    }
}

/// What must not appear in an error: the URL and its password.
struct Secret {
    url: String,
    password: Option<String>,
}

impl Secret {
    fn of(url: &str) -> Secret {
        let password = url
            .split_once("://")
            .and_then(|(_, rest)| rest.split_once('@'))
            .and_then(|(auth, _)| auth.split_once(':'))
            .map(|(_, p)| p.to_string());
        Secret {
            url: url.to_string(),
            password,
        }
    }

    fn error(&self, e: &redis::RedisError) -> Error {
        let mut text = e.to_string();
        for secret in std::iter::once(&self.url).chain(&self.password) {
            if !secret.is_empty() {
                text = text.replace(secret.as_str(), "[withheld]");
            }
        }
        Error::Backend(format!("redis: {text}"))
    }
}

/// An engine error, reduced to the server's or the client's message.
fn engine(e: redis::RedisError) -> Error {
    Error::Backend(format!("redis: {e}"))
}

/// A thread that SUBSCRIBEs and wakes the notifier; it reconnects after a
/// failure and ends once the backend is dropped.
fn spawn_listener(client: redis::Client, notifier: Arc<Notifier>, listening: Arc<AtomicBool>) {
    let _ = std::thread::Builder::new()
        .name("wpxt-redis-listen".into())
        .spawn(move || {
            while listening.load(Ordering::SeqCst) {
                let _ = listen(&client, &notifier, &listening);
                // Whatever was missed while down is found by polling.
                notifier.notify();
                std::thread::sleep(Duration::from_millis(500));
            }
        });
}

fn listen(
    client: &redis::Client,
    notifier: &Notifier,
    listening: &AtomicBool,
) -> redis::RedisResult<()> {
    let mut conn = client.get_connection()?;
    let mut pubsub = conn.as_pubsub();
    pubsub.subscribe(CHANNEL)?;
    pubsub.set_read_timeout(Some(Duration::from_millis(500)))?;
    // Changes made before the SUBSCRIBE took hold sent no wake-up here:
    // wake the waiters once, so they look again.
    notifier.notify();
    while listening.load(Ordering::SeqCst) {
        match pubsub.get_message() {
            Ok(_) => notifier.notify(),
            Err(e) if e.is_timeout() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn opt(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("")
}

fn opt_num<T: ToString>(n: Option<T>) -> String {
    n.map(|n| n.to_string()).unwrap_or_default()
}

impl Backend for RedisBackend {
    fn enqueue(&self, job: &Envelope) -> Result<(), Error> {
        let backoff = serde_json::to_string(&job.backoff)?;
        let fields: [(&str, String); 17] = [
            ("id", job.id.to_string()),
            ("queue", job.queue.clone()),
            ("handler", job.handler.clone()),
            ("payload", job.payload.clone()),
            ("name", opt(&job.name).to_string()),
            ("timeout_ms", opt_num(job.timeout_ms)),
            ("deadline_ms", opt_num(job.deadline_ms)),
            ("attempts", job.attempts.to_string()),
            ("max_attempts", job.max_attempts.to_string()),
            ("backoff", backoff),
            ("idempotency_key", job.idempotency_key.clone()),
            ("state", "queued".into()),
            ("run_at", job.run_at_ms.to_string()),
            ("enqueued_at", job.enqueued_at_ms.to_string()),
            ("lease_token", "0".into()),
            ("queued_ms", "0".into()),
            ("run_ms", "0".into()),
        ];
        let mut call = self.scripts.enqueue.prepare_invoke();
        call.arg(job.id.as_str()).arg(&job.queue).arg(job.run_at_ms);
        for (k, v) in &fields {
            call.arg(*k).arg(v);
        }
        let _: i64 = call.invoke(&mut *self.conn()).map_err(engine)?;
        self.notifier.notify();
        Ok(())
    }

    fn claim(
        &self,
        queue: &str,
        worker: &str,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<Lease>, Error> {
        validate_name(NameKind::Queue, queue)?;
        if max == 0 {
            return Ok(Vec::new());
        }
        let out: Vec<Value> = self
            .scripts
            .claim
            .arg(queue)
            .arg(worker)
            .arg(max)
            .arg(dur_ms(lease))
            .arg(self.ttl_ms)
            .invoke(&mut *self.conn())
            .map_err(engine)?;
        let mut out = out.into_iter();
        let now: i64 = out
            .next()
            .map(|v| i64::from_redis_value(&v))
            .transpose()
            .map_err(engine)?
            .unwrap_or(0);
        out.map(|v| {
            let fields = HashMap::<String, String>::from_redis_value(&v).map_err(engine)?;
            lease_from(&Fields(fields), now)
        })
        .collect()
    }

    fn renew(&self, lease: &Lease, lease_for: Duration) -> Result<bool, Error> {
        let n: i64 = self
            .scripts
            .renew
            .arg(lease.envelope.id.as_str())
            .arg(lease.token)
            .arg(dur_ms(lease_for))
            .invoke(&mut *self.conn())
            .map_err(engine)?;
        Ok(n == 1)
    }

    fn finish(&self, lease: &Lease, end: &End) -> Result<Ack, Error> {
        let mut call = self.scripts.finish.prepare_invoke();
        call.arg(lease.envelope.id.as_str()).arg(lease.token);
        match end {
            End::Succeeded { output, run_ms } => call
                .arg("succeeded")
                .arg(self.ttl_ms)
                .arg(output)
                .arg(run_ms),
            End::Dead { error, run_ms } => call.arg("dead").arg(self.ttl_ms).arg(error).arg(run_ms),
            End::Retry {
                error,
                run_at_ms,
                run_ms,
            } => call
                .arg("retry")
                .arg(self.ttl_ms)
                .arg(error)
                .arg(run_ms)
                .arg(run_at_ms),
            End::Released => call.arg("released").arg(self.ttl_ms),
        };
        let n: i64 = call.invoke(&mut *self.conn()).map_err(engine)?;
        if n != 1 {
            return Ok(Ack::Refused);
        }
        self.notifier.notify();
        Ok(Ack::Accepted)
    }

    fn cancel(&self, id: &JobId) -> Result<bool, Error> {
        let n: i64 = self
            .scripts
            .cancel
            .arg(id.as_str())
            .arg(self.ttl_ms)
            .invoke(&mut *self.conn())
            .map_err(engine)?;
        if n == 1 {
            self.notifier.notify();
        }
        Ok(n == 1)
    }

    fn record(&self, id: &JobId) -> Result<Option<Record>, Error> {
        let fields: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(format!("wpxt:job:{}", id.as_str()))
            .query(&mut *self.conn())
            .map_err(engine)?;
        let fields = Fields(fields);
        if fields.0.is_empty() || fields.int("expires_at")?.is_some_and(|e| e < now_ms()) {
            return Ok(None);
        }
        record_from(&fields).map(Some)
    }

    fn counts(&self, queue: &str) -> Result<Counts, Error> {
        validate_name(NameKind::Queue, queue)?;
        let n: Vec<u64> = self
            .scripts
            .counts
            .arg(queue)
            .invoke(&mut *self.conn())
            .map_err(engine)?;
        let get = |i: usize| n.get(i).copied().unwrap_or(0);
        Ok(Counts {
            ready: get(0),
            scheduled: get(1),
            running: get(2),
            succeeded: get(3),
            dead: get(4),
            cancelled: get(5),
        })
    }

    fn dead(&self, queue: &str, limit: usize) -> Result<Vec<Record>, Error> {
        validate_name(NameKind::Queue, queue)?;
        let rows: Vec<HashMap<String, String>> = self
            .scripts
            .dead
            .arg(queue)
            .arg(limit)
            .invoke(&mut *self.conn())
            .map_err(engine)?;
        rows.into_iter()
            .filter(|r| !r.is_empty())
            .map(|r| record_from(&Fields(r)))
            .collect()
    }

    fn purge(&self) -> Result<u64, Error> {
        self.scripts
            .purge
            .prepare_invoke()
            .invoke(&mut *self.conn())
            .map_err(engine)
    }

    fn notifier(&self) -> &Notifier {
        &self.notifier
    }
}

/// A job's hash.
struct Fields(HashMap<String, String>);

impl Fields {
    fn text(&self, k: &str) -> Result<String, Error> {
        self.0
            .get(k)
            .cloned()
            .ok_or_else(|| Error::Backend(format!("redis: a job hash lacks `{k}`")))
    }

    /// An optional text: absent or empty is `None`.
    fn opt_text(&self, k: &str) -> Option<String> {
        self.0.get(k).filter(|v| !v.is_empty()).cloned()
    }

    fn int(&self, k: &str) -> Result<Option<i64>, Error> {
        self.opt_text(k)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| Error::Backend(format!("redis: `{k}` is not a number")))
            })
            .transpose()
    }

    fn req(&self, k: &str) -> Result<i64, Error> {
        self.int(k)?
            .ok_or_else(|| Error::Backend(format!("redis: a job hash lacks `{k}`")))
    }

    fn count(&self, k: &str) -> Result<u32, Error> {
        Ok(u32::try_from(self.req(k)?).unwrap_or(0))
    }
}

fn lease_from(f: &Fields, now: i64) -> Result<Lease, Error> {
    Ok(Lease {
        envelope: Envelope {
            id: JobId::parse(&f.text("id")?)?,
            queue: f.text("queue")?,
            handler: f.text("handler")?,
            payload: f.text("payload")?,
            name: f.opt_text("name"),
            timeout_ms: f.int("timeout_ms")?.map(|t| u64::try_from(t).unwrap_or(0)),
            deadline_ms: f.int("deadline_ms")?,
            attempts: f.count("attempts")?,
            max_attempts: f.count("max_attempts")?,
            backoff: serde_json::from_str(&f.text("backoff")?)?,
            idempotency_key: f.text("idempotency_key")?,
            run_at_ms: f.req("run_at")?,
            enqueued_at_ms: f.req("enqueued_at")?,
        },
        token: f.req("lease_token")?,
        claimed_at_ms: now,
    })
}

fn record_from(f: &Fields) -> Result<Record, Error> {
    Ok(Record {
        id: JobId::parse(&f.text("id")?)?,
        queue: f.text("queue")?,
        handler: f.text("handler")?,
        name: f.opt_text("name"),
        status: Status::parse(&f.text("state")?)?,
        output: f.opt_text("output"),
        error: f.opt_text("error"),
        attempts: f.count("attempts")?,
        max_attempts: f.count("max_attempts")?,
        queued_ms: f.req("queued_ms")?,
        run_ms: f.req("run_ms")?,
        finished_at_ms: f.int("finished_at")?,
    })
}
