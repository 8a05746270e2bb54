//! The options written inside the macros' attributes, and the duration
//! literals they accept (`"200ms"`).
//!
//! Every error is a `syn::Error` at the offending token: the key for an
//! unknown, repeated or misplaced option, the value for a bad value.

use std::time::Duration;

use proc_macro2::{Span, TokenStream, TokenTree};
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
    /// `timeout = "5s"`: the test fails with the live tree past it.
    pub(crate) timeout: Option<(Duration, Span)>,
    /// `crate = "path"`; `None` means `::nursery`.
    pub(crate) crate_path: Option<Path>,
}

const TEST_KEYS: &[&str] = &["flavor", "worker_threads", "leak_grace", "timeout", "crate"];

impl TestArgs {
    /// Parses the tokens inside `#[nursery::test(..)]`.
    pub(crate) fn parse(args: TokenStream) -> syn::Result<TestArgs> {
        let mut options = TestOptions::default();
        let parsed = parse_options(args, TEST_KEYS, |meta| options.set(meta));
        match (parsed, options.finish()) {
            (Ok(()), finished) => finished,
            (Err(mut error), Err(more)) => {
                error.combine(more);
                Err(error)
            }
            (Err(error), Ok(_)) => Err(error),
        }
    }
}

/// The options as written, each with the span of its key.
#[derive(Default)]
struct TestOptions {
    flavor: Option<Setting<Flavor>>,
    worker_threads: Option<Setting<usize>>,
    leak_grace: Option<Setting<Duration>>,
    timeout: Option<Setting<Duration>>,
    crate_path: Option<Setting<Path>>,
}

impl TestOptions {
    fn set(&mut self, meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
        let Some(key) = meta.path.get_ident() else {
            return Err(unknown_key(&meta.path, TEST_KEYS));
        };
        match key.to_string().as_str() {
            "flavor" => Setting::put(&mut self.flavor, meta, flavor_value),
            "worker_threads" => Setting::put(&mut self.worker_threads, meta, worker_threads_value),
            "leak_grace" => Setting::put(&mut self.leak_grace, meta, |expr| {
                duration_value("leak_grace", expr)
            }),
            "timeout" => Setting::put(&mut self.timeout, meta, |expr| {
                duration_value("timeout", expr)
            }),
            "crate" => Setting::put(&mut self.crate_path, meta, crate_value),
            _ => Err(unknown_key(&meta.path, TEST_KEYS)),
        }
    }

    fn finish(self) -> syn::Result<TestArgs> {
        let flavor = self
            .flavor
            .as_ref()
            .map_or(Flavor::CurrentThread, |flavor| flavor.value);
        if let Some(workers) = &self.worker_threads
            && flavor == Flavor::CurrentThread
        {
            let why = match self.flavor {
                Some(_) => "",
                None => ": the default flavor is `current_thread`, as for `#[tokio::test]`",
            };
            let message = format!("`worker_threads` needs `flavor = \"multi_thread\"`{why}");
            return Err(Error::new(workers.key, message));
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
            timeout: self
                .timeout
                .map(|timeout| (timeout.value, timeout.value_span)),
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
        Err(_) => Err(too_large(int, "worker_threads")),
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

// ===== #[nursery] =====

/// The options of `#[nursery(..)]`: each a setting of the scope's
/// `Builder`, with the span of its value for the generated call.
pub(crate) struct NurseryArgs {
    pub(crate) name: Option<(String, Span)>,
    pub(crate) limit: Option<(usize, Span)>,
    pub(crate) timeout: Option<(Duration, Span)>,
    pub(crate) grace: Option<(Duration, Span)>,
    pub(crate) leak_grace: Option<(Duration, Span)>,
    /// `collect_errors` (or `collect_errors = true`), with the key's span;
    /// `None` when absent or `= false`.
    pub(crate) collect_errors: Option<Span>,
    /// `max_suppressed = N`: how many errors to keep behind the first.
    pub(crate) max_suppressed: Option<(usize, Span)>,
    pub(crate) rate: Option<(Rate, Span)>,
    /// `crate = "path"` with the span of its string; `None` means
    /// `::nursery`.
    pub(crate) crate_path: Option<(Path, Span)>,
}

/// `rate = "100/s"`: at most `starts` child starts per `per`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rate {
    pub(crate) starts: u32,
    pub(crate) per: Duration,
}

const NURSERY_KEYS: &[&str] = &[
    "name",
    "limit",
    "timeout",
    "grace",
    "leak_grace",
    "collect_errors",
    "max_suppressed",
    "rate",
    "crate",
];

impl NurseryArgs {
    /// Parses the tokens inside `#[nursery(..)]`.
    pub(crate) fn parse(args: TokenStream) -> syn::Result<NurseryArgs> {
        let mut options = NurseryOptions::default();
        parse_options(args, NURSERY_KEYS, |meta| options.set(meta)).map(|()| options.finish())
    }
}

/// The options as written, each with the span of its key.
#[derive(Default)]
struct NurseryOptions {
    name: Option<Setting<String>>,
    limit: Option<Setting<usize>>,
    timeout: Option<Setting<Duration>>,
    grace: Option<Setting<Duration>>,
    leak_grace: Option<Setting<Duration>>,
    collect_errors: Option<Setting<bool>>,
    max_suppressed: Option<Setting<usize>>,
    rate: Option<Setting<Rate>>,
    crate_path: Option<Setting<Path>>,
}

impl NurseryOptions {
    fn set(&mut self, meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
        let Some(key) = meta.path.get_ident() else {
            return Err(unknown_key(&meta.path, NURSERY_KEYS));
        };
        match key.to_string().as_str() {
            "name" => Setting::put(&mut self.name, meta, name_value),
            "limit" => Setting::put(&mut self.limit, meta, limit_value),
            "timeout" => Setting::put(&mut self.timeout, meta, |expr| {
                duration_value("timeout", expr)
            }),
            "grace" => Setting::put(&mut self.grace, meta, |expr| duration_value("grace", expr)),
            "leak_grace" => Setting::put(&mut self.leak_grace, meta, |expr| {
                duration_value("leak_grace", expr)
            }),
            "collect_errors" => Setting::flag(&mut self.collect_errors, meta),
            "max_suppressed" => Setting::put(&mut self.max_suppressed, meta, max_suppressed_value),
            "rate" => Setting::put(&mut self.rate, meta, rate_value),
            "crate" => Setting::put(&mut self.crate_path, meta, crate_value),
            "deadline" | "cancel_on" => Err(Error::new(
                key.span(),
                format!(
                    "`{key}` takes a value known only at run time, which an attribute cannot \
                     hold: open a scope with `Nursery::builder().{key}(..)` in the body instead"
                ),
            )),
            _ => Err(unknown_key(&meta.path, NURSERY_KEYS)),
        }
    }

    fn finish(self) -> NurseryArgs {
        fn spanned<T>(setting: Option<Setting<T>>) -> Option<(T, Span)> {
            setting.map(|setting| (setting.value, setting.value_span))
        }
        NurseryArgs {
            name: spanned(self.name),
            limit: spanned(self.limit),
            timeout: spanned(self.timeout),
            grace: spanned(self.grace),
            leak_grace: spanned(self.leak_grace),
            collect_errors: self
                .collect_errors
                .filter(|collect| collect.value)
                .map(|collect| collect.key),
            max_suppressed: spanned(self.max_suppressed),
            rate: spanned(self.rate),
            crate_path: spanned(self.crate_path),
        }
    }
}

fn name_value(expr: &Expr) -> syn::Result<String> {
    let text = string_value(expr, "expected a string, as in `name = \"crawl\"`")?;
    let name = text.value();
    if name.is_empty() {
        return Err(Error::new(
            text.span(),
            "a scope name must not be empty: leave `name` out for an unnamed scope",
        ));
    }
    Ok(name)
}

fn limit_value(expr: &Expr) -> syn::Result<usize> {
    let expected = || {
        Error::new(
            expr.span(),
            "expected a whole number of children, as in `limit = 8`",
        )
    };
    let Expr::Lit(syn::ExprLit {
        lit: Lit::Int(int), ..
    }) = expr
    else {
        return Err(expected());
    };
    match int.base10_parse::<usize>() {
        Ok(0) => Err(Error::new(
            int.span(),
            "`limit` must be at least 1: a scope with a limit of 0 could never run a child \
             (leave `limit` out for no limit)",
        )),
        Ok(limit) => Ok(limit),
        Err(_) => Err(too_large(int, "limit")),
    }
}

fn max_suppressed_value(expr: &Expr) -> syn::Result<usize> {
    let Expr::Lit(syn::ExprLit {
        lit: Lit::Int(int), ..
    }) = expr
    else {
        return Err(Error::new(
            expr.span(),
            "expected a whole number of errors, as in `max_suppressed = 100`",
        ));
    };
    int.base10_parse::<usize>()
        .map_err(|_| too_large(int, "max_suppressed"))
}

/// The error for a whole number that does not fit a `usize` (or whose
/// suffix is not one the option takes).
fn too_large(int: &syn::LitInt, key: &str) -> Error {
    if !int.suffix().is_empty() && int.suffix() != "usize" {
        return Error::new(
            int.span(),
            format!(
                "`{key}` takes a plain whole number, without the `{}` suffix",
                int.suffix()
            ),
        );
    }
    Error::new(
        int.span(),
        format!(
            "`{key}` = {} is too large: at most {} on this target",
            int.base10_digits(),
            usize::MAX
        ),
    )
}

fn rate_value(expr: &Expr) -> syn::Result<Rate> {
    let text = string_value(
        expr,
        "expected a rate in a string, as in `rate = \"100/s\"` or `rate = \"5/100ms\"`",
    )?;
    parse_rate(&text.value()).map_err(|message| Error::new(text.span(), message))
}

// ===== rates =====

const RATE_FORMAT: &str = "a whole number of starts, `/`, then a unit (`ns`, `us`, `ms`, `s`, \
                           `m`, `h`) or a duration, as in \"100/s\", \"5/100ms\" or \"10/m\"";

/// Parses a rate literal: `"N/unit"` (`"100/s"`: 100 starts per second) or
/// `"N/duration"` (`"5/100ms"`: 5 starts per 100 milliseconds), with a
/// whole `N` of at least 1 and a period longer than zero.
///
/// The error is a message for the user, naming the accepted forms.
pub(crate) fn parse_rate(text: &str) -> Result<Rate, String> {
    let invalid = || format!("invalid rate \"{text}\": expected {RATE_FORMAT}");
    let Some((starts, period)) = text.split_once('/') else {
        return Err(invalid());
    };
    if starts.is_empty() || !starts.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(invalid());
    }
    let starts: u32 = starts.parse().map_err(|_| {
        format!(
            "rate \"{text}\" allows too many starts: at most {} per period",
            u32::MAX
        )
    })?;
    if starts == 0 {
        return Err(format!(
            "rate \"{text}\" would never start a child: expected at least 1 start per period, \
             as in \"1/s\" (leave `rate` out for no rate limit)"
        ));
    }
    let per = match period {
        "ns" | "us" | "ms" | "s" | "m" | "h" => parse_duration(&format!("1{period}")),
        _ => parse_duration(period),
    }
    .map_err(|_| invalid())?;
    if per.is_zero() {
        return Err(format!(
            "rate \"{text}\" has a period of zero: expected a period longer than zero, \
             as in \"5/100ms\""
        ));
    }
    Ok(Rate { starts, per })
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
    /// without a value.
    fn put(
        slot: &mut Option<Setting<T>>,
        meta: &ParseNestedMeta<'_>,
        parse: impl FnOnce(&Expr) -> syn::Result<T>,
    ) -> syn::Result<()> {
        let key = meta.path.span();
        let name = path_text(&meta.path);
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

impl Setting<bool> {
    /// Parses a flag: the key alone means `true`; `= true` and `= false`
    /// are accepted too, and nothing else.
    fn flag(slot: &mut Option<Setting<bool>>, meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
        let key = meta.path.span();
        let name = path_text(&meta.path);
        let not_a_flag = |span| {
            let message = format!(
                "`{name}` is a flag: write `{name}` alone (or `{name} = true` / `{name} = false`)"
            );
            Error::new(span, message)
        };
        let (value, value_span) = if meta.input.peek(Token![=]) {
            let expr: Expr = meta.value()?.parse()?;
            match &expr {
                Expr::Lit(syn::ExprLit {
                    lit: Lit::Bool(flag),
                    ..
                }) => (flag.value, flag.span),
                _ => return Err(not_a_flag(expr.span())),
            }
        } else if meta.input.is_empty() || meta.input.peek(Token![,]) {
            (true, key)
        } else {
            return Err(not_a_flag(meta.input.span()));
        };
        *slot = Some(Setting {
            value,
            key,
            value_span,
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

/// Parses the comma-separated options in `args`, handing each to `set`,
/// and refuses a known key given twice. Parsing goes on past a refused
/// option (what is left of it, `= value` or `(..)`, is skipped up to the
/// next `,`), so that every error is reported at once.
fn parse_options(
    args: TokenStream,
    keys: &[&str],
    mut set: impl FnMut(&ParseNestedMeta<'_>) -> syn::Result<()>,
) -> syn::Result<()> {
    let mut errors = Vec::new();
    let mut seen = Vec::new();
    let parsed = syn::meta::parser(|meta| {
        let name = path_text(&meta.path);
        let result = if seen.contains(&name) {
            Err(Error::new(
                meta.path.span(),
                format!("`{name}` is given twice"),
            ))
        } else {
            if keys.contains(&name.as_str()) {
                seen.push(name);
            }
            set(&meta)
        };
        if let Err(error) = result {
            errors.push(error);
            meta.input.step(|cursor| {
                let mut rest = *cursor;
                while let Some((token, next)) = rest.token_tree() {
                    if matches!(&token, TokenTree::Punct(punct) if punct.as_char() == ',') {
                        break;
                    }
                    rest = next;
                }
                Ok(((), rest))
            })?;
        }
        Ok(())
    })
    .parse2(args);
    errors.extend(parsed.err());
    combined(errors)
}

/// One error holding all of `errors`, or `Ok` if there are none.
pub(crate) fn combined(errors: Vec<Error>) -> syn::Result<()> {
    let mut errors = errors.into_iter();
    match errors.next() {
        None => Ok(()),
        Some(mut first) => {
            first.extend(errors);
            Err(first)
        }
    }
}

/// An unknown option, with the nearest known key if one is close enough
/// to be a typo, or else the list of them.
fn unknown_key(path: &Path, keys: &[&str]) -> Error {
    let written = path_text(path);
    let message = match path
        .get_ident()
        .and_then(|key| nearest(&key.to_string(), keys))
    {
        Some(key) => format!("unknown option `{written}`: did you mean `{key}`?"),
        None => {
            let (last, rest) = keys.split_last().expect("a macro has options");
            let rest: Vec<String> = rest.iter().map(|key| format!("`{key}`")).collect();
            format!(
                "unknown option `{written}`: expected {} or `{last}`",
                rest.join(", ")
            )
        }
    };
    Error::new(path.span(), message)
}

/// The key nearest to `written`: within a third of its length in edits
/// (at least one), as rustc suggests names, or the one key it begins
/// (`leak` for `leak_grace`).
fn nearest<'a>(written: &str, keys: &[&'a str]) -> Option<&'a str> {
    let within = (written.chars().count() / 3).max(1);
    let close = keys
        .iter()
        .map(|key| (edit_distance(written, key), *key))
        .filter(|(distance, _)| *distance <= within)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, key)| key);
    close.or_else(|| {
        let mut begun = keys
            .iter()
            .filter(|key| written.len() >= 3 && key.starts_with(written));
        match (begun.next(), begun.next()) {
            (Some(key), None) => Some(*key),
            _ => None,
        }
    })
}

/// The Levenshtein distance: the fewest insertions, deletions and
/// substitutions of one character that turn `a` into `b`.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    // `row[j]`: the distance from the part of `a` seen so far to `b[..j]`.
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, a) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for j in 0..b.len() {
            let substituted = diagonal + usize::from(a != b[j]);
            diagonal = row[j + 1];
            row[j + 1] = substituted.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
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
             `leak_grace`, `timeout` or `crate`"
        );
        assert_eq!(
            error(quote!(tokio::flavor = "x")),
            "unknown option `tokio::flavor`: expected `flavor`, `worker_threads`, \
             `leak_grace`, `timeout` or `crate`"
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

    // ===== #[nursery] =====

    fn nursery_error(args: TokenStream) -> String {
        match NurseryArgs::parse(args) {
            Ok(_) => panic!("the options were accepted"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn nursery_args_are_all_optional() {
        let args = NurseryArgs::parse(quote!()).unwrap();
        assert!(args.name.is_none());
        assert!(args.limit.is_none());
        assert!(args.timeout.is_none());
        assert!(args.grace.is_none());
        assert!(args.leak_grace.is_none());
        assert!(args.collect_errors.is_none());
        assert!(args.rate.is_none());
        assert!(args.crate_path.is_none());
    }

    #[test]
    fn nursery_args_read_every_option() {
        let args = NurseryArgs::parse(quote!(
            limit = 8,
            timeout = "5s",
            grace = "100ms",
            leak_grace = "2s",
            name = "crawl",
            collect_errors,
            rate = "100/s",
            crate = "::re::nursery",
        ))
        .unwrap();
        assert_eq!(args.limit.map(|(limit, _)| limit), Some(8));
        assert_eq!(args.timeout.map(|(timeout, _)| timeout), Some(5 * SECOND));
        assert_eq!(
            args.grace.map(|(grace, _)| grace),
            Some(Duration::from_millis(100))
        );
        assert_eq!(args.leak_grace.map(|(grace, _)| grace), Some(2 * SECOND));
        assert_eq!(args.name.map(|(name, _)| name).as_deref(), Some("crawl"));
        assert!(args.collect_errors.is_some());
        assert_eq!(
            args.rate.map(|(rate, _)| rate),
            Some(Rate {
                starts: 100,
                per: SECOND
            })
        );
        assert_eq!(path_text(&args.crate_path.unwrap().0), "::re::nursery");
    }

    #[test]
    fn nursery_args_take_collect_errors_as_a_flag_or_a_bool() {
        let on = |args| NurseryArgs::parse(args).unwrap().collect_errors.is_some();
        assert!(on(quote!(collect_errors)));
        assert!(on(quote!(collect_errors = true)));
        assert!(!on(quote!(collect_errors = false)));
        assert!(on(quote!(collect_errors, limit = 2)));
        let not_a_flag = "`collect_errors` is a flag: write `collect_errors` alone \
                          (or `collect_errors = true` / `collect_errors = false`)";
        assert_eq!(nursery_error(quote!(collect_errors = 3)), not_a_flag);
        assert_eq!(nursery_error(quote!(collect_errors = "yes")), not_a_flag);
        assert_eq!(nursery_error(quote!(collect_errors(true))), not_a_flag);
        assert_eq!(
            nursery_error(quote!(collect_errors, collect_errors = false)),
            "`collect_errors` is given twice"
        );
    }

    #[test]
    fn nursery_args_allow_a_zero_timeout() {
        let args = NurseryArgs::parse(quote!(timeout = "0s", grace = "0ms")).unwrap();
        assert_eq!(
            args.timeout.map(|(timeout, _)| timeout),
            Some(Duration::ZERO)
        );
        assert_eq!(args.grace.map(|(grace, _)| grace), Some(Duration::ZERO));
    }

    #[test]
    fn nursery_args_refuse_unknown_and_repeated_keys() {
        assert_eq!(
            nursery_error(quote!(workers = 4)),
            "unknown option `workers`: expected `name`, `limit`, `timeout`, `grace`, \
             `leak_grace`, `collect_errors`, `max_suppressed`, `rate` or `crate`"
        );
        assert_eq!(
            nursery_error(quote!(flavor = "multi_thread")),
            "unknown option `flavor`: expected `name`, `limit`, `timeout`, `grace`, \
             `leak_grace`, `collect_errors`, `max_suppressed`, `rate` or `crate`"
        );
        assert_eq!(
            nursery_error(quote!(timeout = "5s", limit = 8, timeout = "10s")),
            "`timeout` is given twice"
        );
        assert_eq!(
            nursery_error(quote!(limit)),
            "`limit` needs a value: `limit = ..`"
        );
        assert!(nursery_error(quote!(cancel_on = token)).starts_with(
            "`cancel_on` takes a value known only at run time, which an attribute cannot hold"
        ));
        assert!(
            nursery_error(quote!(deadline = "5s")).contains("`Nursery::builder().deadline(..)`")
        );
    }

    #[test]
    fn nursery_args_suggest_the_nearest_key() {
        for (written, key) in [
            ("limt", "limit"),
            ("Limit", "limit"),
            ("timout", "timeout"),
            ("timeouts", "timeout"),
            ("colect_errors", "collect_errors"),
            ("max_supressed", "max_suppressed"),
            ("leak", "leak_grace"),
            ("names", "name"),
        ] {
            let written: proc_macro2::Ident = syn::parse_str(written).unwrap();
            assert_eq!(
                nursery_error(quote!(#written = 1)),
                format!("unknown option `{written}`: did you mean `{key}`?")
            );
        }
        // Nothing near: the list.
        assert!(nursery_error(quote!(workers = 4)).contains("expected `name`, `limit`"));
    }

    #[test]
    fn nursery_args_report_every_refused_option() {
        let error = NurseryArgs::parse(quote!(
            limit = 0,
            workers = 4,
            timeout = "5 s",
            name = "ok",
            collect_errors(true),
            limit = 2,
            rate = "0/s"
        ))
        .err()
        .unwrap();
        let messages: Vec<String> = error.into_iter().map(|error| error.to_string()).collect();
        assert_eq!(messages.len(), 6, "{messages:#?}");
        for (message, start) in messages.iter().zip([
            "`limit` must be at least 1",
            "unknown option `workers`",
            "invalid duration \"5 s\"",
            "`collect_errors` is a flag",
            "`limit` is given twice",
            "rate \"0/s\" would never start a child",
        ]) {
            assert!(message.starts_with(start), "{message}");
        }
    }

    #[test]
    fn test_args_report_every_refused_option_and_suggest_keys() {
        let error = TestArgs::parse(quote!(
            flavour = "multi_thread",
            worker_threads = 2,
            leak_grace = "1 s"
        ))
        .err()
        .unwrap();
        let messages: Vec<String> = error.into_iter().map(|error| error.to_string()).collect();
        assert_eq!(
            messages,
            [
                "unknown option `flavour`: did you mean `flavor`?".to_owned(),
                "invalid duration \"1 s\": expected a whole number followed by one of the \
                 units `ns`, `us`, `ms`, `s`, `m`, `h`, as in \"200ms\""
                    .to_owned(),
                "`worker_threads` needs `flavor = \"multi_thread\"`: the default flavor is \
                 `current_thread`, as for `#[tokio::test]`"
                    .to_owned(),
            ]
        );
    }

    #[test]
    fn edit_distance_counts_single_character_edits() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("limit", "limit"), 0);
        assert_eq!(edit_distance("limt", "limit"), 1);
        assert_eq!(edit_distance("limitt", "limit"), 1);
        assert_eq!(edit_distance("linit", "limit"), 1);
        assert_eq!(edit_distance("", "rate"), 4);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("grace", "rate"), 2);
    }

    #[test]
    fn nearest_keeps_to_close_keys() {
        assert_eq!(nearest("limt", NURSERY_KEYS), Some("limit"));
        // Within a third of the length: one edit for a short key.
        assert_eq!(nearest("nme", NURSERY_KEYS), Some("name"));
        assert_eq!(nearest("lim", NURSERY_KEYS), Some("limit"));
        assert_eq!(nearest("x", NURSERY_KEYS), None);
        assert_eq!(nearest("workers", NURSERY_KEYS), None);
        assert_eq!(nearest("flavor", NURSERY_KEYS), None);
        // `ra` begins `rate` but is too short to tell.
        assert_eq!(nearest("ra", NURSERY_KEYS), None);
    }

    #[test]
    fn nursery_args_refuse_bad_values() {
        assert_eq!(
            nursery_error(quote!(limit = 0)),
            "`limit` must be at least 1: a scope with a limit of 0 could never run a child \
             (leave `limit` out for no limit)"
        );
        for limit in [quote!("8"), quote!(-1), quote!(2.5), quote!(N)] {
            assert_eq!(
                nursery_error(quote!(limit = #limit)),
                "expected a whole number of children, as in `limit = 8`"
            );
        }
        assert_eq!(
            nursery_error(quote!(name = "")),
            "a scope name must not be empty: leave `name` out for an unnamed scope"
        );
        assert_eq!(
            nursery_error(quote!(name = crawl)),
            "expected a string, as in `name = \"crawl\"`"
        );
        assert_eq!(
            nursery_error(quote!(timeout = 5)),
            "expected a duration in a string, as in `timeout = \"200ms\"`"
        );
        assert!(nursery_error(quote!(grace = "5 s")).starts_with("invalid duration \"5 s\""));
        assert_eq!(
            nursery_error(quote!(rate = 100)),
            "expected a rate in a string, as in `rate = \"100/s\"` or `rate = \"5/100ms\"`"
        );
        assert!(nursery_error(quote!(rate = "0/s")).starts_with("rate \"0/s\" would never"));
    }

    // ===== rates =====

    #[test]
    fn rate_accepts_a_unit_or_a_duration() {
        let rate = |starts, per| Ok(Rate { starts, per });
        assert_eq!(parse_rate("100/s"), rate(100, SECOND));
        assert_eq!(parse_rate("5/100ms"), rate(5, Duration::from_millis(100)));
        assert_eq!(parse_rate("10/m"), rate(10, 60 * SECOND));
        assert_eq!(parse_rate("1/h"), rate(1, 3600 * SECOND));
        assert_eq!(parse_rate("3/ms"), rate(3, Duration::from_millis(1)));
        assert_eq!(parse_rate("7/2s"), rate(7, 2 * SECOND));
        assert_eq!(
            parse_rate("4294967295/ns"),
            rate(u32::MAX, Duration::from_nanos(1))
        );
    }

    #[test]
    fn rate_refuses_zero_starts_and_a_zero_period() {
        assert_eq!(
            parse_rate("0/s"),
            Err(
                "rate \"0/s\" would never start a child: expected at least 1 start per \
                 period, as in \"1/s\" (leave `rate` out for no rate limit)"
                    .to_owned()
            )
        );
        assert_eq!(
            parse_rate("5/0ms"),
            Err(
                "rate \"5/0ms\" has a period of zero: expected a period longer than zero, \
                 as in \"5/100ms\""
                    .to_owned()
            )
        );
        assert_eq!(
            parse_rate("4294967296/s"),
            Err(
                "rate \"4294967296/s\" allows too many starts: at most 4294967295 per period"
                    .to_owned()
            )
        );
    }

    #[test]
    fn rate_refuses_anything_but_starts_slash_period() {
        for text in [
            "", "100", "/s", "100/", "100/sec", "100 /s", "100/ s", "1.5/s", "-1/s", "+1/s",
            "100/s/s", "100per s", "s/100", "1_000/s", "100/S",
        ] {
            assert_eq!(
                parse_rate(text),
                Err(format!(
                    "invalid rate \"{text}\": expected a whole number of starts, `/`, then a \
                     unit (`ns`, `us`, `ms`, `s`, `m`, `h`) or a duration, as in \"100/s\", \
                     \"5/100ms\" or \"10/m\""
                )),
            );
        }
    }
}
