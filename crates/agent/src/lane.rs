//! The background lane: a small runtime whose threads run at a lower
//! scheduling priority, for work that must never take the CPU from the tail
//! (replay reads and their encoding, compaction).
//!
//! Budgets on requests and bytes keep a replay off the object store's
//! capacity, but on a box with two cores decoding and encoding a replay at
//! full speed still delays the seals, acks and tail reads beside it. The
//! kernel's scheduler is the right arbiter: threads at nice 10 get about a
//! tenth of the CPU weight of the tail's threads while both want it, and all
//! of an otherwise idle CPU — so a replay runs as fast as the box allows when
//! nothing else is running and yields when the tail needs the cores.

use std::future::Future;
use std::io;

use tokio::runtime::{Handle, Runtime};
use tokio::task::JoinHandle;
use tracing::warn;

/// Name of the lane's threads (visible in `top -H` and in tests).
pub const THREAD_NAME: &str = "silt-background";

/// A runtime of low-priority threads; dropping it stops its tasks.
#[derive(Debug)]
pub struct BackgroundLane {
    runtime: Option<Runtime>,
    handle: Handle,
}

impl BackgroundLane {
    /// Starts `threads` worker threads (at least one) at `nice` (0–19; a
    /// thread already running nicer keeps its own value).
    pub fn start(threads: usize, nice: i32) -> io::Result<Self> {
        let nice = nice.clamp(0, 19);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name(THREAD_NAME)
            .on_thread_start(move || lower_priority(nice))
            .enable_all()
            .build()?;
        Ok(Self {
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
        })
    }

    /// Where to spawn background work.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Runs `work` on the lane; the task is aborted when the returned guard is dropped.
    pub fn spawn<F>(&self, work: F) -> LaneTask<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        LaneTask::spawn_on(&self.handle, work)
    }
}

impl Drop for BackgroundLane {
    fn drop(&mut self) {
        // A runtime cannot be dropped from async code; this works from anywhere.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// A task on the lane that is aborted when its waiter goes away (a client
/// that disconnects mid-replay must not leave the work running).
#[derive(Debug)]
pub struct LaneTask<T>(JoinHandle<T>);

impl<T: Send + 'static> LaneTask<T> {
    /// Runs `work` on the runtime behind `handle` (a lane's).
    pub fn spawn_on<F>(handle: &Handle, work: F) -> Self
    where
        F: Future<Output = T> + Send + 'static,
    {
        Self(handle.spawn(work))
    }
}

impl<T> LaneTask<T> {
    /// Waits for the task; `Err` if it panicked or the lane stopped.
    pub async fn join(mut self) -> Result<T, tokio::task::JoinError> {
        (&mut self.0).await
    }
}

impl<T> Drop for LaneTask<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Raises the calling thread's nice value to `nice` (never lowers it: that
/// would need privileges and would undo an operator's own `nice`).
#[cfg(target_os = "linux")]
fn lower_priority(nice: i32) {
    use rustix::process::{getpriority_process, setpriority_process};
    // Linux keeps the nice value per thread: PRIO_PROCESS with a thread id
    // changes only that thread.
    let tid = Some(rustix::thread::gettid());
    match getpriority_process(tid) {
        Ok(current) if current >= nice => {}
        _ => {
            if let Err(e) = setpriority_process(tid, nice) {
                warn!(nice, error = %e, "cannot lower the background lane's priority; it competes with the tail as an equal");
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority(nice: i32) {
    warn!(
        nice,
        "thread priorities are only set on Linux; the background lane competes with the tail as an equal"
    );
}

/// The calling thread's nice value (Linux), for tests and diagnostics.
#[cfg(target_os = "linux")]
pub fn current_thread_nice() -> Option<i32> {
    rustix::process::getpriority_process(Some(rustix::thread::gettid())).ok()
}

/// The calling thread's nice value (Linux), for tests and diagnostics.
#[cfg(not(target_os = "linux"))]
pub fn current_thread_nice() -> Option<i32> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lane_threads_run_at_the_requested_nice_value_and_carry_its_name() {
        let own_before = current_thread_nice();
        let lane = BackgroundLane::start(1, 7).expect("lane starts");
        let (name, nice) = lane
            .handle()
            .block_on(async {
                tokio::spawn(async { (std::thread::current().name().map(str::to_owned), current_thread_nice()) }).await
            })
            .expect("task runs");
        assert_eq!(name.as_deref(), Some(THREAD_NAME));
        if cfg!(target_os = "linux") {
            let nice = nice.expect("nice value readable on Linux");
            assert!(nice >= 7, "lane thread nice={nice}, want >= 7");
            assert_eq!(
                current_thread_nice(),
                own_before,
                "the caller's thread keeps its priority"
            );
        }
    }

    #[test]
    fn dropping_the_returned_task_aborts_the_work() {
        let lane = BackgroundLane::start(1, 0).expect("lane starts");
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (dropped_tx, dropped_rx) = std::sync::mpsc::channel::<()>();
        struct Signal(std::sync::mpsc::Sender<()>);
        impl Drop for Signal {
            fn drop(&mut self) {
                let _ = self.0.send(());
            }
        }
        let task = lane.spawn(async move {
            let _signal = Signal(dropped_tx);
            let _ = started_tx.send(());
            std::future::pending::<()>().await;
        });
        started_rx.recv().expect("task started");
        drop(task);
        dropped_rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the aborted task's state is dropped");
    }
}
