//! The README's main job: check a batch of URLs over HTTP, at most 20 at a
//! time and within an overall deadline, with `nursery`.
//!
//! ```text
//! cargo run --release -p batch-check
//! cargo run --release -p batch-check -- [--limit N] [--timeout-ms N] URL...
//! ```
//!
//! With no URLs it starts a small HTTP server on 127.0.0.1 (an ephemeral
//! port) whose endpoints answer at once (`/ok/N`), late (`/slow/MS`), with
//! the status asked for (`/fail/CODE`) or never (`/hang`), and checks a batch
//! of 40 URLs against it (plus one whose port is closed). With URLs, it
//! checks those (plain `http://` only). The batch is checked three times:
//!
//! 1. **Every URL gets a row.** A child returns each URL's outcome as its
//!    value, good status or not, so nothing fails the scope; the body awaits
//!    the handles in input order and prints status (or error) and latency.
//!    While it runs, a progress bar (indicatif) shows how many are done, how
//!    many failed and the rate, when stdout is a terminal; otherwise a plain
//!    line at each quarter of the batch keeps logs and tests readable.
//!    Each request's timeout is derived from the scope's deadline
//!    ([`nursery::deadline`]), so a URL that never answers shows up as timed
//!    out instead of taking the whole table down with `Error::TimedOut`.
//! 2. **Fail-fast, the default.** A non-2xx status is an `Err`: the first one
//!    cancels the requests in flight, and the queued ones never start. The
//!    scope returns `Error::Failed` with that error, plus any that arrived
//!    while it was cancelling (`suppressed`).
//! 3. **`collect_errors()`.** Nothing is cancelled; the scope returns every
//!    error, in the order they happened.
//!
//! Each request runs in a child of the scope and drives its own connection
//! (hyper's low-level client: no connection pool spawning tasks behind the
//! scope's back), so when a scope returns, nothing it started is still
//! running. The demo server is a child too, started with [`Nursery::start`],
//! its connections children of its own scope; the program stops it with
//! [`Nursery::cancel`].
//!
//! The process exits with status 1 if any of your URLs failed the first
//! check, 2 on a usage error, and 0 otherwise (the demo batch fails on
//! purpose, so it exits with 0).

use std::convert::Infallible;
use std::fmt;
use std::io::{self, IsTerminal, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HOST, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use nursery::{Builder, JoinError, Nursery};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, sleep, timeout_at};

const USAGE: &str = "\
usage: batch-check [--limit N] [--timeout-ms N] [--dump] [URL...]

Checks each http:// URL with a GET: at most N at once (default 20), each pass
over the batch within the timeout (default 2000 ms). Without URLs, checks a demo
batch against a server of its own on 127.0.0.1.

--dump prints the tree of running scopes and tasks (nursery::dump()) once, 100 ms
into the first pass. On Unix, Ctrl-\\ (SIGQUIT) prints it at any time.";

#[tokio::main]
async fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("batch-check: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let demo = args.targets.is_empty();

    let result = Nursery::builder()
        .name("batch-check")
        .scope(|n| async move {
            // Look inside while it runs: the tree of scopes and tasks, on demand.
            n.spawn_named("dump-on-signal", dump_on_signal());
            if args.dump {
                n.spawn_named("dump-once", async {
                    sleep(Duration::from_millis(100)).await;
                    print_dump();
                    Ok(())
                });
            }
            let targets = if demo {
                let server = start_demo_server(&n).await?;
                demo_batch(server).await?
            } else {
                args.targets
            };
            let all_ok = report(&targets, args.settings).await;
            // Stop the demo server, if any. Cancelling on purpose is not an
            // error: the scope returns this body's result (G9).
            n.cancel();
            Ok::<_, io::Error>(all_ok)
        })
        .await;

    match result {
        Ok(all_ok) if all_ok || demo => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("batch-check: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Checks the batch three times and prints what each way returns; `true`
/// if every URL passed the first check.
async fn report(targets: &[Target], settings: Settings) -> bool {
    println!(
        "Checking {}, at most {} at once, each pass within {} ms.\n",
        plural(targets.len(), "URL"),
        settings.limit,
        settings.timeout.as_millis(),
    );

    println!("1. Every URL gets a row; the children return outcomes, not errors:");
    let started = Instant::now();
    let progress = Progress::for_stdout(targets.len());
    let checked = check_all(targets, settings, &progress).await;
    progress.finish();
    let all_ok = match checked {
        Ok(outcomes) => {
            print_table(&outcomes, started.elapsed());
            outcomes.iter().all(Result::is_ok)
        }
        // Only if the scope's deadline passed before every request's own
        // (which leaves a margin): the body was cancelled with the children.
        Err(error) => {
            println!("   Err: {error}");
            false
        }
    };

    println!("\n2. Fail-fast (the default): the first error cancels the rest.");
    let fail_fast = check_strict(targets, settings, Mode::FailFast).await;
    print_fail_fast(&fail_fast);

    println!("\n3. collect_errors(): nothing is cancelled, every error comes back.");
    let collected = check_strict(targets, settings, Mode::CollectErrors).await;
    print_collected(&collected);
    all_ok
}

// ===== the three passes =====

/// How a check of one URL ended: a 2xx answer, or why not.
type Outcome = Result<Reply, CheckError>;

/// Pass 1: checks every URL and returns one outcome per URL, in input order.
///
/// The children never fail: a bad status is a row of the table, not a
/// reason to stop the batch.
async fn check_all(
    targets: &[Target],
    settings: Settings,
    progress: &Arc<Progress>,
) -> Result<Vec<Outcome>, nursery::Error<CheckError>> {
    // The body runs inline, so it may borrow `targets`; children are 'static
    // and get their own copy.
    settings
        .builder()
        .scope(|n| async move {
            let handles: Vec<_> = targets
                .iter()
                .map(|target| {
                    let target = target.clone();
                    let progress = progress.clone();
                    n.spawn_named(target.to_string(), async move {
                        let outcome = check(&target, settings).await;
                        progress.record(outcome.is_ok());
                        Ok(outcome)
                    })
                })
                .collect();
            let mut outcomes = Vec::with_capacity(handles.len());
            for handle in handles {
                // A handle errs only if its child did not finish, and then
                // this body is cancelled too; a row says so all the same.
                outcomes.push(
                    handle
                        .await
                        .unwrap_or_else(|e| Err(CheckError::not_checked(e))),
                );
            }
            Ok(outcomes)
        })
        .await
}

/// Whether a failing URL stops the batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    FailFast,
    CollectErrors,
}

/// What a pass in which failures are errors returned, and what became of
/// its requests.
#[derive(Debug)]
struct Strict {
    result: Result<(), nursery::Error<CheckError>>,
    elapsed: Duration,
    total: usize,
    /// Children that started.
    started: usize,
    /// Children that ran to the end, with an answer or an error of their own.
    finished: usize,
}

/// Counts children as they start and finish, to tell afterwards which were
/// cancelled in flight and which never started.
#[derive(Debug, Default)]
struct Counts {
    started: AtomicUsize,
    finished: AtomicUsize,
}

/// Passes 2 and 3: every URL's child returns `Err` unless the URL answers
/// 2xx, and the scope decides what happens next.
async fn check_strict(targets: &[Target], settings: Settings, mode: Mode) -> Strict {
    let counts = Arc::new(Counts::default());
    let mut builder = settings.builder();
    if mode == Mode::CollectErrors {
        builder = builder.collect_errors();
    }
    let clock = Instant::now();
    let body_counts = counts.clone();
    let result = builder
        .scope(|n| async move {
            for target in targets {
                let target = target.clone();
                let counts = body_counts.clone();
                // No need to keep the handle: the child belongs to the
                // scope, which waits for it and gets its error.
                n.spawn_named(target.to_string(), async move {
                    counts.started.fetch_add(1, Ordering::Relaxed);
                    let outcome = check(&target, settings).await;
                    counts.finished.fetch_add(1, Ordering::Relaxed);
                    outcome.map(drop)
                });
            }
            Ok(())
        })
        .await;
    // Every child has ended (G1), so the counts are final; the scope's join
    // orders their increments before these loads.
    Strict {
        result,
        elapsed: clock.elapsed(),
        total: targets.len(),
        started: counts.started.load(Ordering::Relaxed),
        finished: counts.finished.load(Ordering::Relaxed),
    }
}

// ===== one request =====

/// The settings of a pass over the batch.
#[derive(Clone, Copy, Debug)]
struct Settings {
    /// At most this many requests at once.
    limit: usize,
    /// The deadline of a whole pass.
    timeout: Duration,
    /// The longest one request may take.
    request_timeout: Duration,
}

impl Settings {
    fn new(limit: usize, timeout: Duration) -> Settings {
        Settings {
            limit,
            timeout,
            request_timeout: timeout / 2,
        }
    }

    /// The scope of one pass.
    fn builder(&self) -> Builder {
        Nursery::builder()
            .name("batch")
            .limit(self.limit)
            .timeout(self.timeout)
    }

    /// When a request that starts now must have its answer: after its own
    /// timeout, and in any case a margin before the scope's deadline. At the
    /// scope's deadline every child is cancelled and the scope returns
    /// `Error::TimedOut`; a request that gives up a little earlier can still
    /// report "timed out" as its outcome, and the body can still print it.
    fn request_deadline(&self) -> Instant {
        let own = Instant::now() + self.request_timeout;
        let margin = (self.timeout / 4).min(Duration::from_millis(250));
        match nursery::deadline() {
            Some(scope) => own.min(scope.checked_sub(margin).unwrap_or(scope)),
            None => own,
        }
    }
}

/// A URL that answered 2xx.
#[derive(Debug)]
struct Reply {
    url: String,
    status: StatusCode,
    latency: Duration,
}

/// GETs one URL, within the deadline derived from the current scope's.
async fn check(target: &Target, settings: Settings) -> Outcome {
    let deadline = settings.request_deadline();
    let started = Instant::now();
    if deadline <= started {
        return Err(CheckError {
            url: target.to_string(),
            latency: Duration::ZERO,
            failure: Failure::NoTimeLeft,
        });
    }
    let answer = timeout_at(deadline, get(target)).await;
    let latency = started.elapsed();
    let failure = match answer {
        Ok(Ok(status)) if status.is_success() => {
            return Ok(Reply {
                url: target.to_string(),
                status,
                latency,
            });
        }
        Ok(Ok(status)) => Failure::Status(status),
        Ok(Err(failure)) => failure,
        Err(_elapsed) => Failure::TimedOut,
    };
    Err(CheckError {
        url: target.to_string(),
        latency,
        failure,
    })
}

/// One GET on a connection of its own, read to the end.
async fn get(target: &Target) -> Result<StatusCode, Failure> {
    let stream = TcpStream::connect(&target.addr)
        .await
        .map_err(Failure::Connect)?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(Failure::Http)?;
    let mut request = Request::new(Empty::<Bytes>::new());
    *request.uri_mut() = target.path.clone();
    request.headers_mut().insert(HOST, target.host.clone());
    let exchange = async move {
        let response = sender.send_request(request).await?;
        let status = response.status();
        response.into_body().collect().await?;
        Ok(status)
        // `sender` is dropped here, which lets `connection` finish.
    };
    // The connection is driven right here rather than spawned, so it belongs
    // to this child: cancelling the child closes it.
    let (status, _closed) = tokio::join!(exchange, connection);
    status.map_err(Failure::Http)
}

/// Why a URL did not pass.
#[derive(Debug)]
enum Failure {
    /// It answered with a status outside 2xx.
    Status(StatusCode),
    /// No whole answer before the request's deadline.
    TimedOut,
    /// Not sent: it started too close to the scope's deadline (it was
    /// queued behind slower ones under the limit).
    NoTimeLeft,
    /// No TCP connection.
    Connect(io::Error),
    /// The HTTP exchange failed: connection reset, malformed answer...
    Http(hyper::Error),
    /// The child ended without an outcome: it was cancelled.
    NotChecked(JoinError),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Status(status) => write!(f, "{status}"),
            Failure::TimedOut => f.write_str("timed out"),
            Failure::NoTimeLeft => f.write_str("not sent: too close to the deadline"),
            Failure::Connect(error) => write!(f, "cannot connect: {error}"),
            Failure::Http(error) => write!(f, "HTTP error: {error}"),
            Failure::NotChecked(error) => write!(f, "not checked: {error}"),
        }
    }
}

/// A URL that did not pass: the error type of the batch scopes.
#[derive(Debug)]
struct CheckError {
    url: String,
    latency: Duration,
    failure: Failure,
}

impl CheckError {
    fn not_checked(error: JoinError) -> CheckError {
        CheckError {
            url: error.name().unwrap_or("?").to_owned(),
            latency: Duration::ZERO,
            failure: Failure::NotChecked(error),
        }
    }
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.url, self.failure)
    }
}

impl std::error::Error for CheckError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.failure {
            Failure::Connect(error) => Some(error),
            Failure::Http(error) => Some(error),
            Failure::NotChecked(error) => Some(error),
            Failure::Status(_) | Failure::TimedOut | Failure::NoTimeLeft => None,
        }
    }
}

// ===== URLs and arguments =====

/// A URL to check, split into what the request needs.
#[derive(Clone, Debug)]
struct Target {
    url: Uri,
    /// `host:port`, to connect to.
    addr: String,
    /// The `Host` header.
    host: HeaderValue,
    /// Path and query: the request's target.
    path: Uri,
}

impl Target {
    /// Accepts `http://HOST[:PORT][/PATH][?QUERY]`, and says what is wrong
    /// with anything else.
    fn parse(text: &str) -> Result<Target, String> {
        let invalid = |why: &str| format!("invalid URL `{text}`: {why}");
        let url: Uri = text.parse().map_err(|e| invalid(&format!("{e}")))?;
        match url.scheme_str() {
            Some("http") => {}
            Some(scheme) => {
                return Err(invalid(&format!(
                    "{scheme}:// is not supported, only http://"
                )));
            }
            None => return Err(invalid("no scheme; write it as http://HOST[:PORT]/PATH")),
        }
        let authority = url
            .authority()
            .filter(|authority| !authority.host().is_empty())
            .ok_or_else(|| invalid("no host"))?;
        if authority.as_str().contains('@') {
            return Err(invalid("user names and passwords are not supported"));
        }
        let host =
            HeaderValue::from_str(authority.as_str()).map_err(|e| invalid(&e.to_string()))?;
        let addr = format!("{}:{}", authority.host(), url.port_u16().unwrap_or(80));
        let path = url
            .path_and_query()
            .map_or("/", |path| path.as_str())
            .parse()
            .map_err(|e| invalid(&format!("{e}")))?;
        Ok(Target {
            url,
            addr,
            host,
            path,
        })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.url, f)
    }
}

/// The command line.
#[derive(Debug)]
struct Args {
    settings: Settings,
    /// Empty: check the demo batch.
    targets: Vec<Target>,
    /// Print `nursery::dump()` once during the first pass.
    dump: bool,
}

impl Args {
    /// `Ok(None)` when help was asked for; `Err` says every problem found.
    fn parse(args: impl IntoIterator<Item = String>) -> Result<Option<Args>, String> {
        let mut limit = 20;
        let mut timeout_ms = 2000;
        let mut targets = Vec::new();
        let mut dump = false;
        let mut problems = Vec::new();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) if flag.starts_with("--") => {
                    (flag.to_owned(), Some(value.to_owned()))
                }
                _ => (arg.clone(), None),
            };
            let mut number = |name: &str| -> Option<u64> {
                let value = inline.clone().or_else(|| args.next());
                match value.as_deref().map(str::parse::<u64>) {
                    Some(Ok(n)) if n > 0 => Some(n),
                    Some(_) => {
                        problems.push(format!(
                            "{name} needs a whole number above 0, not `{}`",
                            value.unwrap_or_default()
                        ));
                        None
                    }
                    None => {
                        problems.push(format!("{name} needs a value"));
                        None
                    }
                }
            };
            match flag.as_str() {
                "-h" | "--help" => return Ok(None),
                "--limit" => {
                    limit = number("--limit")
                        .map_or(limit, |n| usize::try_from(n).unwrap_or(usize::MAX))
                }
                "--timeout-ms" => timeout_ms = number("--timeout-ms").unwrap_or(timeout_ms),
                "--dump" => dump = true,
                flag if flag.starts_with('-') => problems.push(format!("unknown option `{flag}`")),
                url => match Target::parse(url) {
                    Ok(target) => targets.push(target),
                    Err(problem) => problems.push(problem),
                },
            }
        }
        if !problems.is_empty() {
            return Err(problems.join("\nbatch-check: "));
        }
        Ok(Some(Args {
            settings: Settings::new(limit, Duration::from_millis(timeout_ms)),
            targets,
            dump,
        }))
    }
}

// ===== progress =====

/// Live progress of a pass: done out of total, failures and rate.
///
/// On a terminal it is a progress bar, cleared when the pass ends (the
/// table follows). Anywhere else (a pipe, a log file, a test) it is a plain
/// line each time another quarter of the batch is done, so the output
/// stays short and readable.
struct Progress {
    total: usize,
    started: Instant,
    /// Done and failed so far.
    counts: Mutex<(usize, usize)>,
    view: View,
}

enum View {
    Bar(ProgressBar),
    Lines(Mutex<Box<dyn Write + Send>>),
}

impl Progress {
    /// A bar if stdout is a terminal, plain lines on stdout otherwise.
    fn for_stdout(total: usize) -> Arc<Progress> {
        if io::stdout().is_terminal() {
            let bar =
                ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stdout());
            let style =
                ProgressStyle::with_template("   [{bar:30}] {pos}/{len} done, {msg} ({elapsed})")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> ");
            bar.set_style(style);
            bar.set_message("0 failed, 0/s");
            Progress::new(total, View::Bar(bar))
        } else {
            Progress::lines(total, Box::new(io::stdout()))
        }
    }

    /// Plain lines to `out`.
    fn lines(total: usize, out: Box<dyn Write + Send>) -> Arc<Progress> {
        Progress::new(total, View::Lines(Mutex::new(out)))
    }

    fn new(total: usize, view: View) -> Arc<Progress> {
        Arc::new(Progress {
            total,
            started: Instant::now(),
            counts: Mutex::new((0, 0)),
            view,
        })
    }

    /// One more URL checked; `ok` if it passed.
    fn record(&self, ok: bool) {
        // Held while writing, so the lines come out in order.
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.0 += 1;
        counts.1 += usize::from(!ok);
        let (done, failed) = *counts;
        match &self.view {
            View::Bar(bar) => {
                bar.inc(1);
                bar.set_message(format!(
                    "{failed} failed, {:.0}/s",
                    rate(done, self.started.elapsed())
                ));
            }
            View::Lines(out) => {
                if crosses_quarter(done, self.total) {
                    let line = progress_line(done, self.total, failed, self.started.elapsed());
                    let mut out = out.lock().unwrap_or_else(|e| e.into_inner());
                    // Progress is a courtesy: a closed pipe must not stop the checks.
                    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
                }
            }
        }
    }

    /// The pass is over: the bar makes way for the table.
    fn finish(&self) {
        if let View::Bar(bar) = &self.view {
            bar.finish_and_clear();
        }
    }
}

/// Whether `done` out of `total` is the first count past another quarter
/// of the batch (every count, for batches of fewer than four).
fn crosses_quarter(done: usize, total: usize) -> bool {
    done == total || (done > 0 && done * 4 / total.max(1) > (done - 1) * 4 / total.max(1))
}

/// `   progress: 10/40 done, 2 failed, 95/s`
fn progress_line(done: usize, total: usize, failed: usize, elapsed: Duration) -> String {
    let rate = rate(done, elapsed);
    format!("   progress: {done}/{total} done, {failed} failed, {rate:.0}/s")
}

/// URLs checked per second.
fn rate(done: usize, elapsed: Duration) -> f64 {
    done as f64 / elapsed.as_secs_f64().max(1e-3)
}

// ===== output =====

/// Prints every live scope and task, indented, outermost first.
fn print_dump() {
    println!("\n--- nursery::dump() ---\n{}---", nursery::dump());
}

/// Prints the dump on each Ctrl-\ (SIGQUIT), until the scope is cancelled.
#[cfg(unix)]
async fn dump_on_signal() -> io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut quit = signal(SignalKind::quit())?;
    while quit.recv().await.is_some() {
        print_dump();
    }
    Ok(())
}

#[cfg(not(unix))]
async fn dump_on_signal() -> io::Result<()> {
    std::future::pending().await
}

fn print_table(outcomes: &[Outcome], elapsed: Duration) {
    let url = |outcome: &Outcome| match outcome {
        Ok(reply) => reply.url.len(),
        Err(error) => error.url.len(),
    };
    let width = outcomes.iter().map(url).max().unwrap_or(0).max(3);
    println!("     #  {:width$}     time  result", "url");
    let (mut ok, mut status, mut timed_out, mut other) = (0, 0, 0, 0);
    for (i, outcome) in outcomes.iter().enumerate() {
        let (url, latency, result) = match outcome {
            Ok(reply) => {
                ok += 1;
                (&reply.url, reply.latency, reply.status.to_string())
            }
            Err(error) => {
                match error.failure {
                    Failure::Status(_) => status += 1,
                    Failure::TimedOut | Failure::NoTimeLeft => timed_out += 1,
                    _ => other += 1,
                }
                (&error.url, error.latency, error.failure.to_string())
            }
        };
        println!(
            "  {:>4}  {url:width$}  {:>4} ms  {result}",
            i + 1,
            latency.as_millis()
        );
    }
    println!(
        "  {} in {} ms. ok: {ok}, bad status: {status}, timed out: {timed_out}, other errors: {other}",
        plural(outcomes.len(), "URL"),
        elapsed.as_millis(),
    );
}

fn print_fail_fast(pass: &Strict) {
    let ms = pass.elapsed.as_millis();
    match &pass.result {
        Ok(()) => println!("   Ok after {ms} ms: every URL answered 2xx."),
        Err(nursery::Error::Failed {
            error, suppressed, ..
        }) => {
            println!("   Err(Failed) after {ms} ms: {error}");
            println!(
                "   suppressed: {} (errors that arrived while cancelling)",
                suppressed.len()
            );
            for error in suppressed {
                println!("     {error}");
            }
        }
        Err(error) => println!("   Err after {ms} ms: {error}"),
    }
    println!(
        "   requests: {} finished, {} cancelled in flight, {} never started",
        pass.finished,
        pass.started - pass.finished,
        pass.total - pass.started,
    );
}

fn print_collected(pass: &Strict) {
    let ms = pass.elapsed.as_millis();
    match &pass.result {
        Ok(()) => println!("   Ok after {ms} ms: every URL answered 2xx."),
        Err(nursery::Error::Failed {
            error, suppressed, ..
        }) => {
            println!(
                "   Err(Failed) after {ms} ms, {} in the order they happened:",
                plural(1 + suppressed.len(), "error"),
            );
            for (i, error) in std::iter::once(error).chain(suppressed).enumerate() {
                println!(
                    "  {:>4}  {:>4} ms  {error}",
                    i + 1,
                    error.latency.as_millis()
                );
            }
        }
        Err(error) => println!("   Err after {ms} ms: {error}"),
    }
}

fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

// ===== the demo server =====

/// Starts the demo server as a child of `n` and returns its address once it
/// is listening.
async fn start_demo_server(n: &Nursery<io::Error>) -> io::Result<SocketAddr> {
    n.start(|ready| async move {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        ready.send(listener.local_addr()?);
        serve(listener).await
    })
    .await
    .map_err(io::Error::other)
}

/// Serves the demo endpoints until cancelled, each connection a child of the
/// server's own scope.
async fn serve(listener: TcpListener) -> io::Result<()> {
    let served: Result<Infallible, _> = Nursery::builder()
        .name("demo-server")
        .scope(|connections: Nursery<io::Error>| async move {
            loop {
                let (stream, _) = listener.accept().await?;
                connections.spawn_named("connection", async move {
                    // A client that hangs up early is its own business.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service_fn(respond))
                        .await;
                    Ok(())
                });
            }
        })
        .await;
    match served {
        Ok(never) => match never {},
        Err(error) => Err(io::Error::other(error)),
    }
}

/// `/ok/N`: 200 at once; `/slow/MS`: 200 after MS ms; `/fail/CODE`: that
/// status; `/hang`: no answer, ever; anything else: 404.
async fn respond(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().trim_start_matches('/');
    let (route, arg) = path.split_once('/').unwrap_or((path, ""));
    let status = match (route, arg.parse::<u16>()) {
        ("ok", _) => StatusCode::OK,
        ("slow", Ok(ms)) => {
            sleep(Duration::from_millis(ms.into())).await;
            StatusCode::OK
        }
        ("fail", Ok(code)) => StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST),
        ("hang", _) => std::future::pending().await,
        _ => StatusCode::NOT_FOUND,
    };
    let mut response = Response::new(Full::new(Bytes::from(format!("{status}\n"))));
    *response.status_mut() = status;
    Ok(response)
}

/// The demo batch: answers within 20-150 ms mostly, a few at once
/// (`/ok/N`, N its row) or late, five error statuses, two URLs that never
/// answer and one whose port is closed.
async fn demo_batch(server: SocketAddr) -> io::Result<Vec<Target>> {
    const PATHS: [&str; 39] = [
        "/ok/1",
        "/slow/80",
        "/slow/45",
        "/fail/500",
        "/slow/120",
        "/hang",
        "/slow/30",
        "/slow/600",
        "/ok/9",
        "/slow/95",
        "/fail/404",
        "/slow/60",
        "/slow/150",
        "/slow/25",
        "/ok/15",
        "/fail/503",
        "/slow/70",
        "/slow/40",
        "/slow/800",
        "/slow/110",
        "/slow/55",
        "/ok/22",
        "/hang",
        "/slow/90",
        "/slow/35",
        "/slow/65",
        "/fail/429",
        "/slow/130",
        "/slow/50",
        "/slow/400",
        "/slow/75",
        "/slow/20",
        "/fail/502",
        "/slow/85",
        "/slow/300",
        "/ok/37",
        "/slow/45",
        "/slow/100",
        "/slow/60",
    ];
    // A port that was just free: nothing listens there any more.
    let closed = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await?
        .local_addr()?;
    let mut urls: Vec<String> = PATHS
        .iter()
        .map(|path| format!("http://{server}{path}"))
        .collect();
    urls.insert(30, format!("http://{closed}/"));
    urls.iter()
        .map(|url| Target::parse(url).map_err(io::Error::other))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` on targets built from `paths` against the demo server, then
    /// stops the server.
    async fn against_demo_server<F, Fut, T>(paths: &[&str], f: F) -> T
    where
        F: FnOnce(Vec<Target>) -> Fut,
        Fut: Future<Output = T>,
    {
        nursery::scope(|n| async move {
            let server = start_demo_server(&n).await?;
            let targets = paths
                .iter()
                .map(|path| Target::parse(&format!("http://{server}{path}")))
                .collect::<Result<Vec<_>, _>>()
                .map_err(io::Error::other)?;
            let output = f(targets).await;
            n.cancel();
            Ok::<_, io::Error>(output)
        })
        .await
        .expect("the demo server starts")
    }

    fn url(outcome: &Outcome) -> &str {
        match outcome {
            Ok(reply) => &reply.url,
            Err(error) => &error.url,
        }
    }

    fn status(error: &CheckError) -> Option<u16> {
        match error.failure {
            Failure::Status(status) => Some(status.as_u16()),
            _ => None,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pass_one_reports_every_url_in_input_order_and_hang_as_timed_out() {
        // The first URLs answer last: the table must follow the input anyway.
        let paths = [
            "/slow/300",
            "/slow/150",
            "/ok/1",
            "/fail/503",
            "/hang",
            "/fail/404",
            "/ok/2",
        ];
        // No request has a short timeout of its own: `/hang` is stopped by
        // the deadline derived from the scope's, before the scope's own.
        let settings = Settings {
            limit: 20,
            timeout: Duration::from_millis(1500),
            request_timeout: Duration::from_secs(600),
        };
        let progress = Progress::lines(paths.len(), Box::new(io::sink()));
        let outcomes = against_demo_server(&paths, |targets| async move {
            check_all(&targets, settings, &progress).await
        })
        .await
        .expect("pass one records failures as outcomes; the scope itself succeeds");

        assert_eq!(outcomes.len(), paths.len());
        for (outcome, path) in outcomes.iter().zip(paths) {
            assert!(
                url(outcome).ends_with(path),
                "{} is not {path}",
                url(outcome)
            );
        }
        let summary: Vec<String> = outcomes
            .iter()
            .map(|outcome| match outcome {
                Ok(reply) => reply.status.as_u16().to_string(),
                Err(error) => match &error.failure {
                    Failure::Status(status) => status.as_u16().to_string(),
                    other => other.to_string(),
                },
            })
            .collect();
        assert_eq!(
            summary,
            ["200", "200", "200", "503", "timed out", "404", "200"]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fail_fast_returns_the_first_failure_and_cancels_the_rest() {
        // Two at once: `/hang` and `/fail/500` run, the `/ok` ones queue.
        let paths = ["/hang", "/fail/500", "/ok/1", "/ok/2", "/ok/3"];
        let settings = Settings {
            limit: 2,
            timeout: Duration::from_secs(600),
            request_timeout: Duration::from_secs(600),
        };
        let pass = against_demo_server(&paths, |targets| async move {
            check_strict(&targets, settings, Mode::FailFast).await
        })
        .await;

        match &pass.result {
            Err(nursery::Error::Failed {
                error, suppressed, ..
            }) => {
                assert_eq!(status(error), Some(500), "{error}");
                assert!(error.url.ends_with("/fail/500"));
                assert!(suppressed.is_empty(), "{suppressed:?}");
            }
            other => panic!("expected Error::Failed, got {other:?}"),
        }
        // Only `/fail/500` finished; `/hang` was cancelled (in flight, or
        // before its first poll) and the queued ones never started.
        assert_eq!(pass.finished, 1);
        assert!(pass.total - pass.started >= 3, "{pass:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn collect_errors_returns_every_failing_url() {
        let paths = [
            "/fail/404",
            "/ok/1",
            "/slow/100",
            "/fail/503",
            "/ok/2",
            "/fail/500",
        ];
        let settings = Settings {
            limit: 2,
            timeout: Duration::from_secs(600),
            request_timeout: Duration::from_secs(600),
        };
        let pass = against_demo_server(&paths, |targets| async move {
            check_strict(&targets, settings, Mode::CollectErrors).await
        })
        .await;

        let Err(nursery::Error::Failed {
            error, suppressed, ..
        }) = pass.result
        else {
            panic!("expected Error::Failed, got {:?}", pass.result);
        };
        let mut failed: Vec<(String, Option<u16>)> = std::iter::once(error)
            .chain(suppressed)
            .map(|error| {
                let path = error
                    .url
                    .rsplit_once("/fail/")
                    .map(|(_, code)| code.to_owned());
                (path.unwrap_or(error.url.clone()), status(&error))
            })
            .collect();
        failed.sort();
        assert_eq!(
            failed,
            [
                ("404".to_owned(), Some(404)),
                ("500".to_owned(), Some(500)),
                ("503".to_owned(), Some(503)),
            ]
        );
        // Nothing was cancelled.
        assert_eq!((pass.started, pass.finished), (paths.len(), paths.len()));
    }

    /// A `Write` whose bytes the test reads back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn off_a_terminal_progress_is_a_plain_line_per_quarter_of_the_batch() {
        // 8 URLs, 3 failing: a line at 2, 4, 6 and 8 done, in that order
        // whatever order the requests finish in.
        let paths = [
            "/ok/1",
            "/fail/500",
            "/slow/30",
            "/ok/4",
            "/fail/404",
            "/slow/10",
            "/fail/503",
            "/ok/8",
        ];
        let settings = Settings {
            limit: 3,
            timeout: Duration::from_secs(600),
            request_timeout: Duration::from_secs(600),
        };
        let captured = Captured::default();
        let progress = Progress::lines(paths.len(), Box::new(captured.clone()));
        let outcomes = against_demo_server(&paths, |targets| async move {
            check_all(&targets, settings, &progress).await
        })
        .await
        .unwrap();
        assert_eq!(outcomes.iter().filter(|o| o.is_err()).count(), 3);

        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        let mut last_failed = 0;
        for (line, done) in lines.iter().zip([2, 4, 6, 8]) {
            // No escape codes, no carriage returns: a log line.
            assert!(
                line.chars().all(|c| c.is_ascii_graphic() || c == ' '),
                "{line:?}"
            );
            let rest = line
                .strip_prefix(&format!("   progress: {done}/8 done, "))
                .unwrap_or_else(|| panic!("{line:?}"));
            let (failed, rate) = rest.split_once(" failed, ").unwrap();
            let failed: usize = failed.parse().unwrap();
            assert!(failed >= last_failed && failed <= 3, "{line:?}");
            last_failed = failed;
            let rate = rate.strip_suffix("/s").unwrap();
            rate.parse::<u64>().unwrap();
        }
        assert_eq!(last_failed, 3, "the last line counts every failure");
    }

    #[test]
    fn progress_lines_come_at_each_quarter_and_at_the_end() {
        let at = |total: usize| -> Vec<usize> {
            (1..=total)
                .filter(|&done| crosses_quarter(done, total))
                .collect()
        };
        assert_eq!(at(40), [10, 20, 30, 40]);
        assert_eq!(at(7), [2, 4, 6, 7]);
        assert_eq!(at(3), [1, 2, 3]);
        assert_eq!(
            progress_line(10, 40, 2, Duration::from_millis(500)),
            "   progress: 10/40 done, 2 failed, 20/s"
        );
    }

    #[test]
    fn malformed_urls_and_options_are_reported_not_panicked_on() {
        let target = Target::parse("http://127.0.0.1:8080/a/b?c=d").unwrap();
        assert_eq!(target.addr, "127.0.0.1:8080");
        assert_eq!(target.path, "/a/b?c=d");
        assert_eq!(target.host, "127.0.0.1:8080");
        assert_eq!(
            Target::parse("http://example.com").unwrap().addr,
            "example.com:80"
        );

        for bad in [
            "https://example.com/",
            "example.com/x",
            "http://",
            "http://a b/",
            "http://u:p@h/",
        ] {
            let error = Target::parse(bad).unwrap_err();
            assert!(
                error.starts_with(&format!("invalid URL `{bad}`")),
                "{error}"
            );
        }
        let args = |list: &[&str]| Args::parse(list.iter().map(|s| s.to_string()));
        assert!(args(&["--limit", "0"]).unwrap_err().contains("--limit"));
        assert!(
            args(&["--timeout-ms"])
                .unwrap_err()
                .contains("needs a value")
        );
        assert!(
            args(&["--frobnicate"])
                .unwrap_err()
                .contains("unknown option")
        );
        let parsed = args(&["--limit=3", "--timeout-ms", "500", "http://h/"])
            .unwrap()
            .unwrap();
        assert_eq!(parsed.settings.limit, 3);
        assert_eq!(parsed.settings.timeout, Duration::from_millis(500));
        assert_eq!(parsed.targets.len(), 1);
        assert!(args(&["--help"]).unwrap().is_none());
    }
}
