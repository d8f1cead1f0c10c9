//! The provisioning log's writer: requests hand their event to an [`EventRecorder`] and go on;
//! one background task writes events in batches and prunes those past the retention.
//!
//! Why a queue and not a write per request: SQLite has one writer, and a transaction per event
//! would put the log on every request's critical path. Batching up to [`BATCH_MAX`] events (or
//! whatever arrived within [`BATCH_WINDOW`]) into one transaction keeps the log's cost to a small
//! fraction of one write per request. When the queue is full (the database cannot keep up for
//! [`QUEUE_CAPACITY`] events) new events are dropped and counted rather than slowing requests down.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use scimd_domain::Service;
use scimd_domain::events::Event;
use scimd_domain::store::StoreError;
use tokio::sync::{mpsc, oneshot};

/// How many events may wait for the writer before new ones are dropped.
pub const QUEUE_CAPACITY: usize = 65_536;
/// Most events written in one transaction.
pub const BATCH_MAX: usize = 1000;
/// How long the writer waits for more events after the first one of a batch.
pub const BATCH_WINDOW: Duration = Duration::from_millis(50);
/// How often events past the retention are deleted (and once at start).
pub const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Events are kept this many days unless configured otherwise.
pub const DEFAULT_EVENT_RETENTION_DAYS: u32 = 30;
/// At most one warning about dropped events per this interval, so that an overload does not also
/// flood the logs.
const DROP_WARNING_EVERY: Duration = Duration::from_secs(10);
/// Attempts to write one batch before it is given up (with an error in the logs).
const WRITE_ATTEMPTS: u32 = 3;

enum Message {
    // Boxed: an event is a few hundred bytes and a flush marker a pointer; the queue's slots are
    // sized by the larger variant.
    Event(Box<Event>),
    Flush(oneshot::Sender<()>),
}

/// Hands events to the background writer without waiting for the database. Cheap to clone; the
/// writer stops once every clone is dropped.
#[derive(Clone)]
pub struct EventRecorder {
    inner: Arc<Inner>,
}

struct Inner {
    tx: mpsc::Sender<Message>,
    service: Service,
    retention: time::Duration,
    dropped: AtomicU64,
    started: Instant,
    /// Milliseconds since `started` before which no further drop warning is logged.
    next_warning_ms: AtomicU64,
}

impl EventRecorder {
    /// Starts the writer (and its hourly pruning) on the current Tokio runtime. Must be called
    /// from within a runtime.
    pub fn start(service: Service, retention: time::Duration) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(write_loop(rx, service.clone(), retention));
        EventRecorder {
            inner: Arc::new(Inner {
                tx,
                service,
                retention,
                dropped: AtomicU64::new(0),
                started: Instant::now(),
                next_warning_ms: AtomicU64::new(0),
            }),
        }
    }

    /// Queues an event; never waits. When the queue is full the event is dropped and counted.
    pub fn record(&self, event: Event) {
        if self.inner.tx.try_send(Message::Event(Box::new(event))).is_ok() {
            return;
        }
        let dropped = self.inner.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        let now_ms = u64::try_from(self.inner.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let due = self.inner.next_warning_ms.load(Ordering::Relaxed);
        let next = now_ms.saturating_add(u64::try_from(DROP_WARNING_EVERY.as_millis()).unwrap_or(u64::MAX));
        // Only the caller that wins the exchange logs, so one warning per interval at most.
        if now_ms >= due
            && self.inner.next_warning_ms.compare_exchange(due, next, Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            tracing::warn!(dropped_total = dropped, "the provisioning log cannot keep up: events were dropped");
        }
    }

    /// Returns once every event recorded before the call is written (or given up after errors).
    /// For graceful shutdown and tests.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        // Through the same queue as the events, so everything queued before is written first.
        if self.inner.tx.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Deletes the events older than the retention now; returns how many.
    pub async fn prune_now(&self) -> Result<u64, StoreError> {
        prune(&self.inner.service, self.inner.retention).await
    }

    /// How long events are kept.
    pub fn retention(&self) -> time::Duration {
        self.inner.retention
    }

    /// How many events were dropped because the queue was full, since start.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }
}

async fn prune(service: &Service, retention: time::Duration) -> Result<u64, StoreError> {
    let before = service.now() - retention;
    let n = service.store.prune_events(before).await?;
    if n > 0 {
        tracing::info!(deleted = n, "pruned provisioning log events past the retention");
    }
    // The webhook outbox and its delivery log share the log's retention.
    let outbox = service.store.prune_outbox(before).await?;
    if outbox > 0 {
        tracing::info!(deleted = outbox, "pruned webhook outbox rows past the retention");
    }
    // Expired console sessions go on the same schedule (a live lookup also refuses them).
    service.store.prune_sessions(service.now()).await?;
    Ok(n)
}

/// The writer: collects a batch (up to [`BATCH_MAX`] events, or what arrives within
/// [`BATCH_WINDOW`] of the first, or up to a flush marker), writes it in one transaction, then
/// answers the flush markers. Ends when every sender is gone.
async fn write_loop(mut rx: mpsc::Receiver<Message>, service: Service, retention: time::Duration) {
    let mut prune_tick = tokio::time::interval(PRUNE_EVERY);
    prune_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch: Vec<Event> = Vec::with_capacity(BATCH_MAX);
    let mut flushes: Vec<oneshot::Sender<()>> = Vec::new();
    loop {
        tokio::select! {
            biased;
            message = rx.recv() => {
                let Some(message) = message else { break };
                let deadline = tokio::time::Instant::now() + BATCH_WINDOW;
                take(message, &mut batch, &mut flushes);
                while batch.len() < BATCH_MAX && flushes.is_empty() {
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some(message)) => take(message, &mut batch, &mut flushes),
                        Ok(None) | Err(_) => break,
                    }
                }
                if !batch.is_empty() {
                    write_batch(&service, &batch).await;
                    batch.clear();
                }
                for done in flushes.drain(..) {
                    let _ = done.send(());
                }
            }
            _ = prune_tick.tick() => {
                // On its own task: deleting a month of events must not hold up the queue.
                let service = service.clone();
                tokio::spawn(async move {
                    // One node prunes for all; the lease outlives a prune so that they take turns.
                    if !service.lead("prune", PRUNE_EVERY).await.unwrap_or(false) {
                        return;
                    }
                    if let Err(e) = prune(&service, retention).await {
                        tracing::error!(error = %e, "could not prune the provisioning log");
                    }
                });
            }
        }
    }
}

fn take(message: Message, batch: &mut Vec<Event>, flushes: &mut Vec<oneshot::Sender<()>>) {
    match message {
        Message::Event(event) => batch.push(*event),
        Message::Flush(done) => flushes.push(done),
    }
}

async fn write_batch(service: &Service, batch: &[Event]) {
    for attempt in 1..=WRITE_ATTEMPTS {
        match service.store.insert_events(batch).await {
            Ok(()) => return,
            Err(e) if attempt < WRITE_ATTEMPTS => {
                tracing::warn!(error = %e, attempt, "could not write provisioning log events; retrying");
                tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
            }
            Err(e) => {
                tracing::error!(error = %e, lost = batch.len(), "could not write provisioning log events; they are lost");
            }
        }
    }
}
