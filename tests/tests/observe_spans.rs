//! With nursery's `tracing` feature (`cargo test -p nursery-tests --features
//! tracing`): every scope runs in a `nursery.scope` span and every child in
//! a `nursery.task` span under its scope's, across worker threads; events
//! say when a scope is cancelled and why, and when a child fails or panics.
//!
//! A `tracing-subscriber` registry with a small recording layer, installed
//! as the global default (worker threads need to see it): each span is
//! recorded with its full path of ancestors at creation, so tests find
//! their own spans by their unique scope names.

#![cfg(feature = "tracing")]

use std::fmt::{self, Write as _};
use std::sync::{Mutex, Once};

use nursery::Nursery;
use nursery_tests::within;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// Every span's path (`scope:outer/task:a/scope:inner/...`), and every
/// event as its path, message and fields.
static SPANS: Mutex<Vec<String>> = Mutex::new(Vec::new());
static EVENTS: Mutex<Vec<Recorded>> = Mutex::new(Vec::new());

#[derive(Clone, Debug)]
struct Recorded {
    path: String,
    fields: Vec<(String, String)>,
}

impl Recorded {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value.as_str())
    }
}

#[derive(Default)]
struct Fields(Vec<(String, String)>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name().to_owned(), value.to_owned()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.push((field.name().to_owned(), format!("{value:?}")));
    }
}

/// A span's path, kept in its extensions so children can extend it.
struct Path(String);

struct Recorder;

impl<S> Layer<S> for Recorder
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        let kind = match attrs.metadata().name() {
            "nursery.scope" => "scope",
            "nursery.task" => "task",
            other => other,
        };
        let label = fields
            .0
            .iter()
            .find(|(field, _)| field == "name")
            .map_or("<unnamed>", |(_, value)| value.as_str());
        // The explicit parent, or the current span for a contextual one.
        let parent = ctx.span_scope(id).and_then(|mut scope| {
            scope.next(); // the span itself
            scope.next()
        });
        let mut path = match &parent {
            Some(parent) => match parent.extensions().get::<Path>() {
                Some(Path(path)) => format!("{path}/"),
                None => String::new(),
            },
            None => String::new(),
        };
        let _ = write!(path, "{kind}:{label}");
        SPANS.lock().unwrap().push(path.clone());
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Path(path));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let path = ctx
            .event_span(event)
            .and_then(|span| {
                span.extensions()
                    .get::<Path>()
                    .map(|Path(path)| path.clone())
            })
            .unwrap_or_default();
        EVENTS.lock().unwrap().push(Recorded {
            path,
            fields: fields.0,
        });
    }
}

fn install() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let subscriber = tracing_subscriber::registry().with(Recorder);
        tracing::subscriber::set_global_default(subscriber).expect("no other global subscriber");
    });
}

fn spans_under(root: &str) -> Vec<String> {
    let prefix = format!("scope:{root}");
    SPANS
        .lock()
        .unwrap()
        .iter()
        .filter(|path| path.starts_with(&prefix))
        .cloned()
        .collect()
}

fn events_under(root: &str) -> Vec<Recorded> {
    let prefix = format!("scope:{root}");
    EVENTS
        .lock()
        .unwrap()
        .iter()
        .filter(|event| event.path.starts_with(&prefix))
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_spans_sit_under_their_scopes_span_three_levels_deep() {
    install();
    within(
        "the scope",
        Nursery::builder()
            .name("spans-outer")
            .scope(|n: Nursery<String>| async move {
                for i in 0..4 {
                    n.spawn_named(format!("outer-task-{i}"), async move {
                        Nursery::builder()
                            .name(format!("spans-middle-{i}"))
                            .scope(|m: Nursery<String>| async move {
                                m.spawn_named(format!("middle-task-{i}"), async move {
                                    Nursery::builder()
                                        .name(format!("spans-inner-{i}"))
                                        .limit(1) // run by a runner task: same tree
                                        .scope(|k: Nursery<String>| async move {
                                            k.spawn_named(format!("inner-task-{i}"), async move {
                                                tokio::task::yield_now().await;
                                                tracing::info!(i, "inside the innermost task");
                                                Ok(())
                                            });
                                            Ok(())
                                        })
                                        .await
                                        .map_err(|e| e.to_string())
                                });
                                Ok(())
                            })
                            .await
                            .map_err(|e| e.to_string())
                    });
                }
                Ok(())
            }),
    )
    .await
    .unwrap();

    let spans = spans_under("spans-outer");
    for i in 0..4 {
        let outer = "scope:spans-outer".to_owned();
        let expected = [
            format!("{outer}/task:outer-task-{i}"),
            format!("{outer}/task:outer-task-{i}/scope:spans-middle-{i}"),
            format!("{outer}/task:outer-task-{i}/scope:spans-middle-{i}/task:middle-task-{i}"),
            format!(
                "{outer}/task:outer-task-{i}/scope:spans-middle-{i}/task:middle-task-{i}/scope:spans-inner-{i}"
            ),
            format!(
                "{outer}/task:outer-task-{i}/scope:spans-middle-{i}/task:middle-task-{i}/scope:spans-inner-{i}/task:inner-task-{i}"
            ),
        ];
        for path in expected {
            assert_eq!(
                spans.iter().filter(|span| **span == path).count(),
                1,
                "{path} in {spans:#?}"
            );
        }
    }
    // 1 outer scope, and per branch 3 tasks and 2 scopes: nothing else.
    assert_eq!(spans.len(), 1 + 4 * 5, "{spans:#?}");

    // Code inside a child logs in the child's span, on whichever thread.
    let inside: Vec<_> = events_under("spans-outer")
        .into_iter()
        .filter(|event| event.field("message") == Some("inside the innermost task"))
        .collect();
    assert_eq!(inside.len(), 4);
    for event in inside {
        let i = event.field("i").unwrap();
        assert!(
            event
                .path
                .ends_with(&format!("/scope:spans-inner-{i}/task:inner-task-{i}")),
            "{event:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_say_which_child_failed_and_why_the_scope_was_cancelled() {
    install();
    let result = within(
        "the scope",
        Nursery::builder()
            .name("events-fail")
            .scope(|n: Nursery<String>| async move {
                n.spawn_named("disk", async { Err::<(), _>("disk full".to_string()) });
                Ok(())
            }),
    )
    .await;
    assert!(result.is_err());

    let events = events_under("events-fail");
    let failed: Vec<_> = events
        .iter()
        .filter(|event| event.field("message") == Some("nursery: task failed"))
        .collect();
    assert_eq!(failed.len(), 1, "{events:#?}");
    assert_eq!(failed[0].path, "scope:events-fail/task:disk");
    assert_eq!(failed[0].field("error"), Some("disk full"));
    assert_eq!(failed[0].field("error.type"), Some("alloc::string::String"));

    let cancelled: Vec<_> = events
        .iter()
        .filter(|event| event.field("message") == Some("nursery: scope cancelled"))
        .collect();
    assert_eq!(cancelled.len(), 1, "{events:#?}");
    assert_eq!(cancelled[0].path, "scope:events-fail");
    let cause = cancelled[0].field("cause").unwrap();
    assert!(cause.starts_with("task `disk` spawned at "), "{cause}");
    assert!(cause.ends_with(" failed"), "{cause}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_say_which_child_panicked() {
    install();
    let scope = tokio::spawn(Nursery::builder().name("events-panic").scope(
        |n: Nursery<String>| async move {
            n.spawn_named("boom", async { panic!("on purpose") as Result<(), String> });
            Ok(())
        },
    ));
    assert!(within("the scope", scope).await.unwrap_err().is_panic());

    let events = events_under("events-panic");
    let panicked: Vec<_> = events
        .iter()
        .filter(|event| event.field("message") == Some("nursery: task panicked"))
        .collect();
    assert_eq!(panicked.len(), 1, "{events:#?}");
    assert_eq!(panicked[0].path, "scope:events-panic/task:boom");
    assert_eq!(panicked[0].field("panic"), Some("on purpose"));
    assert!(events.iter().any(|event| {
        event.field("message") == Some("nursery: scope cancelled")
            && event
                .field("cause")
                .is_some_and(|cause| cause.contains("`boom`") && cause.ends_with("panicked"))
    }));
}

#[derive(Debug)]
struct Refused(u16);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "refused with {}", self.0)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_error_is_shown_by_type_and_by_display_once_named() {
    install();
    for (root, named) in [
        ("events-custom-plain", false),
        ("events-custom-named", true),
    ] {
        let mut builder = Nursery::builder().name(root);
        if named {
            builder = builder.trace_errors::<Refused>();
        }
        let result = within(
            "the scope",
            builder.scope(|n: Nursery<Refused>| async move {
                // An inner scope inherits the setting.
                n.spawn(async {
                    nursery::scope(|inner: Nursery<Refused>| async move {
                        inner.spawn_named("fetch", async { Err::<(), _>(Refused(503)) });
                        Ok(())
                    })
                    .await
                    .map_err(|_| Refused(0))
                });
                Ok(())
            }),
        )
        .await;
        assert!(result.is_err());
        let failed: Vec<_> = events_under(root)
            .into_iter()
            .filter(|event| event.path.ends_with("/task:fetch"))
            .filter(|event| event.field("message") == Some("nursery: task failed"))
            .collect();
        assert_eq!(failed.len(), 1, "{failed:#?}");
        assert!(
            failed[0]
                .field("error.type")
                .unwrap()
                .ends_with("::Refused"),
            "{failed:#?}"
        );
        let expected = named.then_some("refused with 503");
        assert_eq!(failed[0].field("error"), expected, "{failed:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_child_has_its_own_span_and_its_failure_an_event() {
    install();
    let reason = String::from("parse error");
    let reason = &reason;
    let result = within(
        "the scope",
        Nursery::builder().name("events-local").scope_local(
            |_n: Nursery<String>, local| async move {
                local.spawn_named("parser", async move { Err::<(), _>(reason.clone()) });
                Ok(())
            },
        ),
    )
    .await;
    assert!(result.is_err());
    let spans = spans_under("events-local");
    assert!(
        spans.contains(&"scope:events-local/task:parser".to_owned()),
        "{spans:#?}"
    );
    let events = events_under("events-local");
    let failed: Vec<_> = events
        .iter()
        .filter(|event| event.field("message") == Some("nursery: task failed"))
        .collect();
    assert_eq!(failed.len(), 1, "{events:#?}");
    assert_eq!(failed[0].path, "scope:events-local/task:parser");
    assert_eq!(failed[0].field("error"), Some("parse error"));
}
