//! A fault-injecting object store for tests: wraps any store and, by a
//! seeded plan, adds latency, 503 SlowDown, 500s, connection resets,
//! truncated bodies, "PUT succeeded but the response was lost", and bit flips
//! in stored bytes. The faults a real S3 produces, on demand.

use std::fmt;
use std::ops::Range;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// Probabilities (0.0–1.0) of each fault per request, and a seed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultPlan {
    /// Added latency per request.
    pub latency: Duration,
    /// Requests answered with a 503 SlowDown.
    pub slowdown: f64,
    /// Requests answered with a 500.
    pub server_error: f64,
    /// Requests failing with a connection reset.
    pub reset: f64,
    /// GET bodies cut short.
    pub truncate: f64,
    /// PUTs applied whose response is lost (the caller sees an error).
    pub put_lost: f64,
    /// GETs returning bytes with one bit flipped (corruption in transit or at rest).
    pub bitflip: f64,
    /// RNG seed, so a failing run can be replayed.
    pub seed: u64,
}

impl FromStr for FaultPlan {
    type Err = String;

    /// Parses `slowdown=0.1,put_lost=0.05,latency_ms=50,seed=7`.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut plan = Self::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("expected key=value in fault plan: {part}"))?;
            let prob = || -> Result<f64, String> {
                let p: f64 = v.parse().map_err(|_| format!("bad probability {k}={v}"))?;
                if (0.0..=1.0).contains(&p) {
                    Ok(p)
                } else {
                    Err(format!("probability out of range {k}={v}"))
                }
            };
            match k {
                "latency_ms" => plan.latency = Duration::from_millis(v.parse().map_err(|_| format!("bad {k}={v}"))?),
                "slowdown" => plan.slowdown = prob()?,
                "server_error" => plan.server_error = prob()?,
                "reset" => plan.reset = prob()?,
                "truncate" => plan.truncate = prob()?,
                "put_lost" => plan.put_lost = prob()?,
                "bitflip" => plan.bitflip = prob()?,
                "seed" => plan.seed = v.parse().map_err(|_| format!("bad {k}={v}"))?,
                other => return Err(format!("unknown fault kind {other}")),
            }
        }
        Ok(plan)
    }
}

/// Counts of injected faults, for test assertions.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FaultCounts {
    /// 503s injected.
    pub slowdown: u64,
    /// 500s injected.
    pub server_error: u64,
    /// Resets injected.
    pub reset: u64,
    /// Truncated bodies injected.
    pub truncate: u64,
    /// Lost PUT responses injected.
    pub put_lost: u64,
    /// Bit flips injected.
    pub bitflip: u64,
}

struct State {
    plan: FaultPlan,
    rng: StdRng,
    counts: FaultCounts,
}

/// An [`ObjectStore`] that injects faults into another.
pub struct FaultyStore {
    inner: Arc<dyn ObjectStore>,
    state: Mutex<State>,
}

impl fmt::Debug for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultyStore")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyStore({})", self.inner)
    }
}

enum Fault {
    None,
    Slowdown,
    ServerError,
    Reset,
}

fn generic(message: &str) -> object_store::Error {
    object_store::Error::Generic {
        store: "faulty",
        source: message.to_owned().into(),
    }
}

impl FaultyStore {
    /// Wraps `inner` with `plan`.
    pub fn new(inner: Arc<dyn ObjectStore>, plan: FaultPlan) -> Self {
        let rng = StdRng::seed_from_u64(plan.seed);
        Self {
            inner,
            state: Mutex::new(State {
                plan,
                rng,
                counts: FaultCounts::default(),
            }),
        }
    }

    /// Replaces the plan (e.g. to heal the store mid-test).
    pub fn set_plan(&self, plan: FaultPlan) {
        let mut state = self.state.lock().expect("fault state lock poisoned");
        state.rng = StdRng::seed_from_u64(plan.seed);
        state.plan = plan;
    }

    /// Faults injected so far.
    pub fn counts(&self) -> FaultCounts {
        self.state.lock().expect("fault state lock poisoned").counts
    }

    fn roll(&self, pick: impl Fn(&FaultPlan) -> f64, count: impl Fn(&mut FaultCounts)) -> bool {
        let mut state = self.state.lock().expect("fault state lock poisoned");
        let p = pick(&state.plan);
        let hit = p > 0.0 && state.rng.random::<f64>() < p;
        if hit {
            count(&mut state.counts);
        }
        hit
    }

    async fn before_request(&self) -> Fault {
        let latency = self.state.lock().expect("fault state lock poisoned").plan.latency;
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        if self.roll(|p| p.slowdown, |c| c.slowdown += 1) {
            return Fault::Slowdown;
        }
        if self.roll(|p| p.server_error, |c| c.server_error += 1) {
            return Fault::ServerError;
        }
        if self.roll(|p| p.reset, |c| c.reset += 1) {
            return Fault::Reset;
        }
        Fault::None
    }

    async fn check(&self) -> Result<()> {
        match self.before_request().await {
            Fault::None => Ok(()),
            Fault::Slowdown => Err(generic("injected: 503 SlowDown, please reduce your request rate")),
            Fault::ServerError => Err(generic("injected: 500 InternalError")),
            Fault::Reset => Err(generic("injected: connection reset by peer")),
        }
    }

    fn flip_random_bit(&self, bytes: &Bytes) -> Bytes {
        if bytes.is_empty() {
            return bytes.clone();
        }
        let mut state = self.state.lock().expect("fault state lock poisoned");
        let bit = state.rng.random_range(0..bytes.len() * 8);
        let mut v = bytes.to_vec();
        v[bit / 8] ^= 1 << (bit % 8);
        Bytes::from(v)
    }
}

#[async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        self.check().await?;
        let result = self.inner.put_opts(location, payload, opts).await?;
        if self.roll(|p| p.put_lost, |c| c.put_lost += 1) {
            return Err(generic("injected: PUT applied but the response was lost"));
        }
        Ok(result)
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        self.check().await?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.check().await?;
        let head = options.head;
        let result = self.inner.get_opts(location, options).await?;
        if head {
            return Ok(result);
        }
        let truncate = self.roll(|p| p.truncate, |c| c.truncate += 1);
        let flip = self.roll(|p| p.bitflip, |c| c.bitflip += 1);
        if !truncate && !flip {
            return Ok(result);
        }
        let GetResult {
            payload,
            meta,
            range,
            attributes,
            extensions,
        } = result;
        let bytes = GetResult {
            payload,
            meta: meta.clone(),
            range: range.clone(),
            attributes: attributes.clone(),
            extensions: extensions.clone(),
        }
        .bytes()
        .await?;
        let body = if flip { self.flip_random_bit(&bytes) } else { bytes };
        let stream: BoxStream<'static, Result<Bytes>> = if truncate {
            let cut = body.slice(..body.len() / 2);
            futures::stream::iter(vec![Ok(cut), Err(generic("injected: connection closed mid-body"))]).boxed()
        } else {
            futures::stream::once(async move { Ok(body) }).boxed()
        };
        Ok(GetResult {
            payload: GetResultPayload::Stream(stream),
            meta,
            range,
            attributes,
            extensions,
        })
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.check().await?;
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.check().await?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.check().await?;
        self.inner.copy_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plans() {
        let plan: FaultPlan = "slowdown=0.1, put_lost=0.5,latency_ms=20,seed=9".parse().expect("plan");
        assert_eq!(plan.slowdown, 0.1);
        assert_eq!(plan.put_lost, 0.5);
        assert_eq!(plan.latency, Duration::from_millis(20));
        assert_eq!(plan.seed, 9);
        assert!("slowdown=2".parse::<FaultPlan>().is_err());
        assert!("nonsense=0.1".parse::<FaultPlan>().is_err());
        assert!("slowdown".parse::<FaultPlan>().is_err());
    }
}
