//! The options written inside the macros' attributes, and the duration
//! literals they accept (`"200ms"`).
//!
//! Every error is a `syn::Error` at the offending token: the key for an
//! unknown, repeated or misplaced option, the value for a bad value.

use std::time::Duration;

use proc_macro2::{Span, TokenStream};
use syn::meta::ParseNestedMeta;
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{Error, Expr, Lit, LitStr, Path, Token};

// ===== #[nursery::test] =====

/// The runtime a test runs on, as in `#[tokio::test]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flavor {
    CurrentThread,
    MultiThread,
}

/// The options of `#[nursery::test(..)]`, checked against each other.
pub(crate) struct TestArgs {
    pub(crate) flavor: Flavor,
    /// The `flavor` value as written, or the call site: a missing
    /// `rt-multi-thread` feature in the user's tokio is reported there.
    pub(crate) flavor_span: Span,
    pub(crate) worker_threads: Option<(usize, Span)>,
    pub(crate) leak_grace: Option<(Duration, Span)>,
    /// `crate = "path"`; `None` means `::nursery`.
    pub(crate) crate_path: Option<Path>,
}

const TEST_KEYS: &str = "`flavor`, `worker_threads`, `leak_grace` or `crate`";

impl TestArgs {
    /// Parses the tokens inside `#[nursery::test(..)]`.
    pub(crate) fn parse(args: TokenStream) -> syn::Result<TestArgs> {
        let mut options = TestOptions::default();
        syn::meta::parser(|meta| options.set(meta)).parse2(args)?;
        options.finish()
    }
}

/// The options as written, each with the span of its key.
#[derive(Default)]
struct TestOptions {
    flavor: Option<Setting<Flavor>>,
    worker_threads: Option<Setting<usize>>,
    leak_grace: Option<Setting<Duration>>,
    crate_path: Option<Setting<Path>>,
}

impl TestOptions {
    fn set(&mut self, meta: ParseNestedMeta<'_>) -> syn::Result<()> {
        let Some(key) = meta.path.get_ident() else {
            return Err(unknown_key(&meta.path, TEST_KEYS));
        };
        match key.to_string().as_str() {
            "flavor" => Setting::put(&mut self.flavor, &meta, flavor_value),
            "worker_threads" => Setting::put(&mut self.worker_threads, &meta, worker_threads_value),
            "leak_grace" => Setting::put(&mut self.leak_grace, &meta, |expr| {
                duration_value("leak_grace", expr)
            }),
            "crate" => Setting::put(&mut self.crate_path, &meta, crate_value),
            _ => Err(unknown_key(&meta.path, TEST_KEYS)),
        }
    }

    fn finish(self) -> syn::Result<TestArgs> {
        let flavor = self
            .flavor
            .as_ref()
            .map_or(Flavor::CurrentThread, |flavor| flavor.value);
        if let Some(workers) = &self.worker_threads {
            if flavor == Flavor::CurrentThread {
                let why = match self.flavor {
                    Some(_) => "",
                    None => ": the default flavor is `current_thread`, as for `#[tokio::test]`",
                };
                let message = format!("`worker_threads` needs `flavor = \"multi_thread\"`{why}");
                return Err(Error::new(workers.key, message));
            }
        }
        Ok(TestArgs {
            flavor,
            flavor_span: self
                .flavor
                .map_or_else(Span::call_site, |flavor| flavor.value_span),
            worker_threads: self
                .worker_threads
                .map(|workers| (workers.value, workers.value_span)),
            leak_grace: self.leak_grace.map(|grace| (grace.value, grace.value_span)),
            crate_path: self.crate_path.map(|path| path.value),
        })
    }
}

fn flavor_value(expr: &Expr) -> syn::Result<Flavor> {
    let text = string_value(
        expr,
        "expected a string: `flavor = \"current_thread\"` or `flavor = \"multi_thread\"`",
    )?;
    match text.value().as_str() {
        "current_thread" => Ok(Flavor::CurrentThread),
        "multi_thread" => Ok(Flavor::MultiThread),
        other => Err(Error::new(
            text.span(),
            format!("unknown flavor `{other}`: expected \"current_thread\" or \"multi_thread\""),
        )),
    }
}

fn worker_threads_value(expr: &Expr) -> syn::Result<usize> {
    let expected = || Error::new(expr.span(), "expected a number, as in `worker_threads = 4`");
    let Expr::Lit(syn::ExprLit {
        lit: Lit::Int(int), ..
    }) = expr
    else {
        return Err(expected());
    };
    match int.base10_parse::<usize>() {
        Ok(0) => Err(Error::new(
            int.span(),
            "`worker_threads` must be at least 1",
        )),
        Ok(workers) => Ok(workers),
        Err(_) => Err(expected()),
    }
}

fn crate_value(expr: &Expr) -> syn::Result<Path> {
    const EXAMPLE: &str = "as in `crate = \"::my_crate::nursery\"`";
    let text = string_value(expr, &format!("expected a path in a string, {EXAMPLE}"))?;
    text.parse::<Path>().map_err(|_| {
        let message = format!("`{}` is not a path: expected one {EXAMPLE}", text.value());
        Error::new(text.span(), message)
    })
}

// ===== durations =====

const DURATION_FORMAT: &str =
    "a whole number followed by one of the units `ns`, `us`, `ms`, `s`, `m`, `h`, as in \"200ms\"";

/// Parses a duration literal: a whole number followed by a unit, one of
/// `ns`, `us`, `ms`, `s`, `m` (minutes) and `h`, with nothing around or
/// between them: `"200ms"`, `"5s"`, `"0s"`.
///
/// The error is a message for the user, naming the accepted units.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    let invalid = || format!("invalid duration \"{text}\": expected {DURATION_FORMAT}");
    if number.is_empty() {
        return Err(invalid());
    }
    let too_long = || format!("duration \"{text}\" is too long");
    // Only digits: the one way to fail is a number beyond `u64`.
    let number: u64 = number.parse().map_err(|_| too_long())?;
    let secs_per = |per: u64| number.checked_mul(per).ok_or_else(too_long);
    match unit {
        "ns" => Ok(Duration::from_nanos(number)),
        "us" => Ok(Duration::from_micros(number)),
        "ms" => Ok(Duration::from_millis(number)),
        "s" => Ok(Duration::from_secs(number)),
        "m" => secs_per(60).map(Duration::from_secs),
        "h" => secs_per(60 * 60).map(Duration::from_secs),
        "" => Err(format!(
            "duration \"{text}\" has no unit: expected {DURATION_FORMAT}"
        )),
        _ => Err(invalid()),
    }
}

/// A duration option's value: a string literal that [`parse_duration`]
/// accepts. `key` names the option in the error.
pub(crate) fn duration_value(key: &str, expr: &Expr) -> syn::Result<Duration> {
    let text = string_value(
        expr,
        &format!("expected a duration in a string, as in `{key} = \"200ms\"`"),
    )?;
    parse_duration(&text.value()).map_err(|message| Error::new(text.span(), message))
}

// ===== shared by every option =====

/// An option's value, with the spans of its key and of its value.
struct Setting<T> {
    value: T,
    key: Span,
    value_span: Span,
}

impl<T> Setting<T> {
    /// Parses `= value` after the key in `meta` into `slot`, refusing a key
    /// given twice or without a value.
    fn put(
        slot: &mut Option<Setting<T>>,
        meta: &ParseNestedMeta<'_>,
        parse: impl FnOnce(&Expr) -> syn::Result<T>,
    ) -> syn::Result<()> {
        let key = meta.path.span();
        let name = path_text(&meta.path);
        if slot.is_some() {
            return Err(Error::new(key, format!("`{name}` is given twice")));
        }
        if !meta.input.peek(Token![=]) {
            return Err(Error::new(
                key,
                format!("`{name}` needs a value: `{name} = ..`"),
            ));
        }
        let expr: Expr = meta.value()?.parse()?;
        let value = parse(&expr)?;
        *slot = Some(Setting {
            value,
            key,
            value_span: expr.span(),
        });
        Ok(())
    }
}

fn string_value<'a>(expr: &'a Expr, expected: &str) -> syn::Result<&'a LitStr> {
    match expr {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Str(text),
            ..
        }) => Ok(text),
        _ => Err(Error::new(expr.span(), expected)),
    }
}

fn unknown_key(path: &Path, expected: &str) -> Error {
    let message = format!("unknown option `{}`: expected {expected}", path_text(path));
    Error::new(path.span(), message)
}

fn path_text(path: &Path) -> String {
    let segments: Vec<String> = path
        .segments
        .iter()
        .map(|segment| segment.ident.to_string())
        .collect();
    let colon = if path.leading_colon.is_some() {
        "::"
    } else {
        ""
    };
    format!("{colon}{}", segments.join("::"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn duration_accepts_every_unit() {
        assert_eq!(parse_duration("7ns"), Ok(Duration::from_nanos(7)));
        assert_eq!(parse_duration("7us"), Ok(Duration::from_micros(7)));
        assert_eq!(parse_duration("200ms"), Ok(Duration::from_millis(200)));
        assert_eq!(parse_duration("5s"), Ok(5 * SECOND));
        assert_eq!(parse_duration("2m"), Ok(120 * SECOND));
        assert_eq!(parse_duration("3h"), Ok(3 * 3600 * SECOND));
    }

    #[test]
    fn duration_accepts_zero_and_leading_zeros() {
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("007ms"), Ok(Duration::from_millis(7)));
    }

    #[test]
    fn duration_accepts_the_largest_numbers_that_fit() {
        assert_eq!(
            parse_duration("18446744073709551615ns"),
            Ok(Duration::from_nanos(u64::MAX))
        );
        assert_eq!(
            parse_duration("18446744073709551615s"),
            Ok(Duration::from_secs(u64::MAX))
        );
    }

    #[test]
    fn duration_refuses_a_missing_unit() {
        let error = parse_duration("200").unwrap_err();
        assert!(error.starts_with("duration \"200\" has no unit"), "{error}");
        assert!(error.contains("`ns`, `us`, `ms`, `s`, `m`, `h`"), "{error}");
    }

    #[test]
    fn duration_refuses_anything_but_number_then_unit() {
        for text in [
            "", "ms", " 1s", "1s ", "1 s", "-1s", "+1s", "1.5s", "1_000ms", "1s500ms", "1sec",
            "1S", "1µs", "1d", "s1", "0x10s",
        ] {
            let error = parse_duration(text).unwrap_err();
            assert_eq!(
                error,
                format!(
                    "invalid duration \"{text}\": expected a whole number followed by one of \
                     the units `ns`, `us`, `ms`, `s`, `m`, `h`, as in \"200ms\""
                ),
            );
        }
    }

    #[test]
    fn duration_refuses_numbers_beyond_u64() {
        for text in [
            "18446744073709551616ns",
            "99999999999999999999999s",
            "307445734561825861m",
            "5124095576030432h",
        ] {
            assert_eq!(
                parse_duration(text),
                Err(format!("duration \"{text}\" is too long")),
            );
        }
        // The largest that still fit.
        assert!(parse_duration("307445734561825860m").is_ok());
        assert!(parse_duration("5124095576030431h").is_ok());
    }

    fn parse(args: TokenStream) -> syn::Result<TestArgs> {
        TestArgs::parse(args)
    }

    fn error(args: TokenStream) -> String {
        match parse(args) {
            Ok(_) => panic!("the options were accepted"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn test_args_default_to_current_thread_without_options() {
        let args = parse(quote!()).unwrap();
        assert_eq!(args.flavor, Flavor::CurrentThread);
        assert!(args.worker_threads.is_none());
        assert!(args.leak_grace.is_none());
        assert!(args.crate_path.is_none());
    }

    #[test]
    fn test_args_read_every_option() {
        let args = parse(quote!(
            flavor = "multi_thread",
            worker_threads = 3,
            leak_grace = "250ms",
            crate = "::re::export",
        ))
        .unwrap();
        assert_eq!(args.flavor, Flavor::MultiThread);
        assert_eq!(args.worker_threads.map(|(n, _)| n), Some(3));
        assert_eq!(
            args.leak_grace.map(|(grace, _)| grace),
            Some(Duration::from_millis(250))
        );
        let path = args.crate_path.unwrap();
        assert_eq!(path_text(&path), "::re::export");
    }

    #[test]
    fn test_args_refuse_unknown_and_repeated_keys() {
        assert_eq!(
            error(quote!(start_paused = true)),
            "unknown option `start_paused`: expected `flavor`, `worker_threads`, \
             `leak_grace` or `crate`"
        );
        assert_eq!(
            error(quote!(tokio::flavor = "x")),
            "unknown option `tokio::flavor`: expected `flavor`, `worker_threads`, \
             `leak_grace` or `crate`"
        );
        assert_eq!(
            error(quote!(flavor = "multi_thread", flavor = "multi_thread")),
            "`flavor` is given twice"
        );
        assert_eq!(
            error(quote!(leak_grace)),
            "`leak_grace` needs a value: `leak_grace = ..`"
        );
    }

    #[test]
    fn test_args_refuse_bad_values() {
        assert_eq!(
            error(quote!(flavor = "local")),
            "unknown flavor `local`: expected \"current_thread\" or \"multi_thread\""
        );
        assert_eq!(
            error(quote!(flavor = multi_thread)),
            "expected a string: `flavor = \"current_thread\"` or `flavor = \"multi_thread\"`"
        );
        assert_eq!(
            error(quote!(flavor = "multi_thread", worker_threads = 0)),
            "`worker_threads` must be at least 1"
        );
        assert_eq!(
            error(quote!(flavor = "multi_thread", worker_threads = -1)),
            "expected a number, as in `worker_threads = 4`"
        );
        assert_eq!(
            error(quote!(leak_grace = 200)),
            "expected a duration in a string, as in `leak_grace = \"200ms\"`"
        );
        assert!(error(quote!(leak_grace = "2 s")).starts_with("invalid duration \"2 s\""));
        assert_eq!(
            error(quote!(crate = "not a path")),
            "`not a path` is not a path: expected one as in `crate = \"::my_crate::nursery\"`"
        );
    }

    #[test]
    fn test_args_refuse_worker_threads_on_current_thread() {
        assert_eq!(
            error(quote!(worker_threads = 2)),
            "`worker_threads` needs `flavor = \"multi_thread\"`: the default flavor is \
             `current_thread`, as for `#[tokio::test]`"
        );
        assert_eq!(
            error(quote!(flavor = "current_thread", worker_threads = 2)),
            "`worker_threads` needs `flavor = \"multi_thread\"`"
        );
    }
}
