//! The steps of a poll, each on a scope made for it, outside any
//! scope future.

use std::future::{pending, ready};
use std::panic::Location;
use std::pin::{Pin, pin};
use std::task::{Context, Poll};

use super::{Cold, Phase, drive_body, join, notice_cancel, watch_outside};
use crate::core::Reason;
use crate::scope::{Config, Scope};
use crate::sync::Arc;
use crate::task::Slot;

/// Runs `test` with a fresh scope, inside a tokio runtime.
fn with_scope(test: impl FnOnce(&Scope, &mut Context<'_>)) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _entered = rt.enter();
    let (scope, _) = Scope::open(&Config::default(), None, false, None, Location::caller());
    let waker = futures_util::task::noop_waker();
    test(&scope, &mut Context::from_waker(&waker));
}

fn live<F>(future: F) -> Slot<F> {
    Slot::Live { future }
}

#[test]
fn a_cancel_is_started_once_and_spares_the_body_only_when_requested() {
    with_scope(|scope, _| {
        let (mut phase, mut cold) = (Phase::Running, None::<Pin<Box<Cold>>>);
        let mut body = pin!(live(pending::<()>()));
        notice_cancel(scope, &mut phase, &mut cold, body.as_mut());
        assert_eq!(phase, Phase::Running, "nothing to notice yet");
        scope.cancel(Reason::Requested);
        notice_cancel(scope, &mut phase, &mut cold, body.as_mut());
        assert_eq!(phase, Phase::Cancelling);
        assert!(scope.token.is_cancelled(), "the cancel was started");
        assert!(
            matches!(*body, Slot::Live { .. }),
            "n.cancel() spares the body"
        );
        scope.cancel(Reason::TimedOut);
        notice_cancel(scope, &mut phase, &mut cold, body.as_mut());
        assert!(matches!(*body, Slot::Dropped), "a deadline does not");
    });
}

#[test]
fn the_token_cancelled_directly_cancels_the_scope() {
    with_scope(|scope, cx| {
        let mut cold = None;
        let mut token = pin!(scope.token.clone().cancelled_owned());
        watch_outside(scope, &mut cold, token.as_mut(), cx);
        assert!(!scope.core.is_cancelled());
        scope.token.cancel();
        watch_outside(scope, &mut cold, token.as_mut(), cx);
        assert!(scope.core.is_cancelled());
    });
}

#[test]
fn the_body_is_driven_until_it_yields_or_returns() {
    with_scope(|scope, cx| {
        let (mut phase, mut cold) = (Phase::Running, None);
        let lent_scope = Scope::open(&Config::default(), None, false, None, Location::caller()).0;
        let mut lent = Some(Arc::new(lent_scope));
        let mut value = None;
        let slot = pin!(live(pending::<Result<u8, ()>>()));
        let body = super::Parts {
            slot,
            lent: &mut lent,
            value: &mut value,
        };
        assert!(
            !drive_body(scope, &mut phase, &mut cold, body, cx),
            "it yields"
        );
        let slot = pin!(live(ready(Ok::<u8, ()>(7))));
        let body = super::Parts {
            slot,
            lent: &mut lent,
            value: &mut value,
        };
        assert!(
            drive_body(scope, &mut phase, &mut cold, body, cx),
            "it returns"
        );
        assert_eq!(value, Some(7));
    });
}

#[test]
fn the_join_completes_once_the_body_has_finished_and_no_child_is_left() {
    with_scope(|scope, cx| {
        let mut cold = None;
        assert_eq!(join(scope, &mut cold, false, cx), Poll::Pending);
        scope.core.enter().expect("a child enters");
        assert_eq!(join(scope, &mut cold, true, cx), Poll::Pending);
        assert!(!scope.core.exit(), "the child exits");
        assert_eq!(join(scope, &mut cold, true, cx), Poll::Ready(()));
    });
}
