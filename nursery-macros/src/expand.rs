//! Code generation for `#[nursery::test]`: the `async fn` becomes a plain
//! `#[test]` fn that builds a tokio runtime and blocks on
//! `__private::run_test`, which runs the body in a root scope and then
//! checks for leaks.
//!
//! The generated code names nothing of `nursery` but `__private`, and
//! nothing of tokio but what `__private::tokio` re-exports.

use std::time::Duration;

use proc_macro2::{Delimiter, Ident, Literal, Span, TokenStream, TokenTree};
use quote::{ToTokens, quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::{Attribute, Error, Signature, Visibility, braced, token};

use crate::args::{Flavor, TestArgs};

/// Expands `#[nursery::test(args)] item`.
///
/// On any error the user's item comes back as written (less a second test
/// attribute), followed by every error as a `compile_error!`: the rest of
/// the crate still type-checks and the IDE keeps working (as tokio-macros
/// does).
pub(crate) fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    let input: TestFn = match syn::parse2(item.clone()) {
        Ok(input) => input,
        Err(error) => return with_error(item, error),
    };
    // Every error at once: the options' first, then the function's.
    match (TestArgs::parse(args), input.check()) {
        (Ok(args), Ok(())) => input.expand(&args),
        (Err(mut error), Err(more)) => {
            error.combine(more);
            with_error(input.unexpanded(), error)
        }
        (Err(error), Ok(())) | (Ok(_), Err(error)) => with_error(input.unexpanded(), error),
    }
}

fn with_error(mut item: TokenStream, error: Error) -> TokenStream {
    item.extend(error.into_compile_error());
    item
}

// ===== the test function =====

/// An `async fn` item with its body left as tokens: the body is copied into
/// the expansion untouched, so it need not be parsed (nor even be valid:
/// rustc reports its own errors there).
struct TestFn {
    attrs: Vec<Attribute>,
    vis: Visibility,
    sig: Signature,
    brace: token::Brace,
    /// `#![..]` at the top of the body: moved onto the function, since the
    /// `async` block the body becomes cannot carry them.
    inner_attrs: Vec<Attribute>,
    body: TokenStream,
}

impl Parse for TestFn {
    fn parse(input: ParseStream<'_>) -> syn::Result<TestFn> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis = input.parse()?;
        let sig = input.parse()?;
        let content;
        let brace = braced!(content in input);
        let inner_attrs = content.call(Attribute::parse_inner)?;
        let body = content.parse()?;
        Ok(TestFn {
            attrs,
            vis,
            sig,
            brace,
            inner_attrs,
            body,
        })
    }
}

impl TestFn {
    /// Refuses what cannot become a test, each error at its token.
    fn check(&self) -> syn::Result<()> {
        let mut errors = Vec::new();
        let sig = &self.sig;
        if sig.asyncness.is_none() {
            errors.push(Error::new(
                sig.fn_token.span,
                "`#[nursery::test]` needs an `async fn`: add `async` before `fn`",
            ));
        }
        if !sig.generics.params.is_empty() {
            errors.push(Error::new_spanned(
                &sig.generics,
                "a `#[nursery::test]` function cannot be generic",
            ));
        }
        if !sig.inputs.is_empty() {
            errors.push(Error::new_spanned(
                &sig.inputs,
                "a `#[nursery::test]` function takes no parameters",
            ));
        }
        for attr in self.attrs.iter().chain(&self.inner_attrs) {
            if is_test_attribute(attr) {
                errors.push(Error::new_spanned(
                    attr,
                    "`#[nursery::test]` already makes this function a test: remove this attribute",
                ));
            }
        }
        let mut errors = errors.into_iter();
        match errors.next() {
            None => Ok(()),
            Some(mut first) => {
                first.extend(errors);
                Err(first)
            }
        }
    }

    fn expand(self, args: &TestArgs) -> TokenStream {
        let TestFn {
            attrs,
            vis,
            mut sig,
            brace,
            inner_attrs,
            body,
        } = self;
        sig.asyncness = None;
        let inner_attrs = inner_attrs.into_iter().map(|mut attr| {
            attr.style = syn::AttrStyle::Outer;
            attr
        });

        // The runtime and the call sit at the body's last statement, so that
        // a body whose value does not match the declared return type is
        // reported there (as `#[tokio::test]` does), not at the attribute.
        let (last_start, last_end) = last_statement(&body);
        let at = Span::call_site().located_at(last_start);
        let krate = match &args.crate_path {
            Some(path) => path.to_token_stream(),
            None => quote!(::nursery),
        };
        let new_runtime = match args.flavor {
            Flavor::CurrentThread => Ident::new("new_current_thread", at),
            // At the `"multi_thread"` literal: without tokio's
            // `rt-multi-thread` feature, rustc reports the missing
            // constructor there.
            Flavor::MultiThread => Ident::new(
                "new_multi_thread",
                Span::call_site().located_at(args.flavor_span),
            ),
        };
        let worker_threads = args.worker_threads.map(|(workers, span)| {
            let workers = spanned(Literal::usize_unsuffixed(workers), span);
            quote_spanned!(at=> .worker_threads(#workers))
        });
        let leak_grace = match args.leak_grace {
            Some((grace, span)) => {
                let grace = duration(grace, span);
                quote_spanned!(at=> ::core::option::Option::Some(#grace))
            }
            None => quote_spanned!(at=> ::core::option::Option::None),
        };

        // The body is an `async` block defined before these names and
        // outside the block that holds `private` and `runtime`: it cannot
        // see them. `mixed_site` keeps `body` from clashing with anything.
        let future = Ident::new("body", Span::mixed_site().located_at(last_start));
        let private = Ident::new("private", Span::mixed_site().located_at(last_start));
        // With the span of the user's token, unlike `at`: rustc joins it
        // with the closing `)` (at `last_end`) to underline the whole last
        // statement when the body's value has the wrong type.
        let runtime = Ident::new("runtime", last_start);

        let mut async_body = quote!(async move);
        brace.surround(&mut async_body, |tokens| body.to_tokens(tokens));

        // `return` inside a block, since attributes cannot go on a tail
        // expression. One `use` of the crate path, so that a wrong path is
        // one error, at the path.
        let run = quote_spanned! {last_end=>
            #[allow(
                clippy::expect_used,
                clippy::diverging_sub_expression,
                clippy::needless_return,
                clippy::unwrap_in_result
            )]
            {
                use #krate::__private as #private;
                let #runtime = #private::tokio::runtime::Builder::#new_runtime()
                    #worker_threads
                    .enable_all()
                    .build()
                    .expect("nursery::test: failed to build the tokio runtime");
                return #runtime.block_on(#private::run_test(#leak_grace, #future));
            }
        };

        let mut expanded = quote! {
            #(#attrs)*
            #(#inner_attrs)*
            #[::core::prelude::v1::test]
            #vis #sig
        };
        brace.surround(&mut expanded, |tokens| {
            tokens.extend(quote! {
                let #future = #async_body;
                #run
            });
        });
        expanded
    }

    /// The function as written, for the error path, less any test
    /// attribute: a second one would add errors of its own (`#[test]` on an
    /// `async fn`) or expand into a second test (`#[tokio::test]`).
    fn unexpanded(&self) -> TokenStream {
        let TestFn {
            attrs,
            vis,
            sig,
            brace,
            inner_attrs,
            body,
        } = self;
        let attrs = attrs.iter().filter(|attr| !is_test_attribute(attr));
        let inner_attrs = inner_attrs.iter().filter(|attr| !is_test_attribute(attr));
        let mut item = quote!(#(#attrs)* #vis #sig);
        brace.surround(&mut item, |tokens| {
            tokens.extend(quote!(#(#inner_attrs)* #body));
        });
        item
    }
}

/// `#[test]`, `#[tokio::test]`, `#[nursery::test]`, `#[core::prelude::v1::test]`..:
/// any attribute whose path ends in `test` would make a second test of it.
fn is_test_attribute(attr: &Attribute) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|segment| segment.ident == "test")
}

/// The spans of the first and last token of the body's last statement, or
/// the call site for an empty body.
fn last_statement(body: &TokenStream) -> (Span, Span) {
    let tokens: Vec<TokenTree> = body.clone().into_iter().collect();
    match tokens.last() {
        Some(last) => (tokens[last_statement_start(&tokens)].span(), last.span()),
        None => (Span::call_site(), Span::call_site()),
    }
}

/// Where the last statement of a non-empty body begins: after the last `;`
/// or statement-ending `{..}` block (`if c {..}`, `loop {..}`) that is not
/// the body's final token. Only a guide for error spans: a wrong guess
/// widens or narrows the underlined code, nothing else.
fn last_statement_start(tokens: &[TokenTree]) -> usize {
    let before_last = &tokens[..tokens.len() - 1];
    let ends_statement = |at: usize| match &before_last[at] {
        TokenTree::Punct(punct) => punct.as_char() == ';',
        TokenTree::Group(group) => {
            group.delimiter() == Delimiter::Brace && !continues_expression(&tokens[at + 1])
        }
        _ => false,
    };
    (0..before_last.len())
        .rev()
        .find(|&at| ends_statement(at))
        .map_or(0, |end| end + 1)
}

/// Whether the token after a `{..}` block continues the same expression
/// (`match x {..}.unwrap()`, `async {..}.await`, `S {..} == s`,
/// `if c {..} else {..}`), so the block does not end a statement.
fn continues_expression(next: &TokenTree) -> bool {
    match next {
        TokenTree::Punct(punct) => punct.as_char() != ';',
        TokenTree::Ident(ident) => ident == "else" || ident == "as",
        _ => false,
    }
}

/// `::core::time::Duration::new(secs, nanos)`, exact for every duration.
fn duration(grace: Duration, span: Span) -> TokenStream {
    let secs = spanned(Literal::u64_unsuffixed(grace.as_secs()), span);
    let nanos = spanned(Literal::u32_unsuffixed(grace.subsec_nanos()), span);
    quote_spanned!(span=> ::core::time::Duration::new(#secs, #nanos))
}

fn spanned(mut literal: Literal, span: Span) -> Literal {
    literal.set_span(span);
    literal
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(args: TokenStream, item: TokenStream) -> String {
        test(args, item).to_string()
    }

    #[test]
    fn keeps_attributes_visibility_and_return_type() {
        let out = expand(
            quote!(),
            quote! {
                /// Docs.
                #[should_panic]
                pub(crate) async fn it_works() -> Result<(), String> {
                    #![allow(unused)]
                    Ok(())
                }
            },
        );
        let expected_head = quote! {
            #[doc = r" Docs."]
            #[should_panic]
            #[allow(unused)]
            #[::core::prelude::v1::test]
            pub(crate) fn it_works() -> Result<(), String>
        }
        .to_string();
        assert!(out.starts_with(&expected_head), "{out}");
        assert!(out.contains("let body = async move { Ok (()) } ;"), "{out}");
        assert!(!out.contains("compile_error"), "{out}");
    }

    #[test]
    fn expands_to_a_test_that_blocks_on_run_test() {
        let out = expand(
            quote!(
                flavor = "multi_thread",
                worker_threads = 2,
                leak_grace = "1500ms"
            ),
            quote! {
                #[ignore]
                async fn t() -> Result<(), String> {
                    let n: u32 = "2".parse().map_err(|_| "nan")?;
                    assert_eq!(n, 2);
                    Ok(())
                }
            },
        );
        let expected = quote! {
            #[ignore]
            #[::core::prelude::v1::test]
            fn t() -> Result<(), String> {
                let body = async move {
                    let n: u32 = "2".parse().map_err(|_| "nan")?;
                    assert_eq!(n, 2);
                    Ok(())
                };
                #[allow(
                    clippy::expect_used,
                    clippy::diverging_sub_expression,
                    clippy::needless_return,
                    clippy::unwrap_in_result
                )]
                {
                    use ::nursery::__private as private;
                    let runtime = private::tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(2)
                        .enable_all()
                        .build()
                        .expect("nursery::test: failed to build the tokio runtime");
                    return runtime.block_on(private::run_test(
                        ::core::option::Option::Some(::core::time::Duration::new(1, 500000000)),
                        body
                    ));
                }
            }
        };
        assert_eq!(out, expected.to_string());
    }

    #[test]
    fn defaults_to_current_thread_and_the_library_s_leak_grace() {
        let out = expand(
            quote!(),
            quote!(
                async fn t() {}
            ),
        );
        assert!(
            out.contains(
                "private :: tokio :: runtime :: Builder :: new_current_thread () . enable_all ()"
            ),
            "{out}"
        );
        assert!(
            out.contains("private :: run_test (:: core :: option :: Option :: None , body)"),
            "{out}"
        );
    }

    #[test]
    fn uses_the_crate_option_as_the_path_to_nursery() {
        let out = expand(
            quote!(crate = "::re::nursery"),
            quote!(
                async fn t() {}
            ),
        );
        assert!(
            out.contains("use :: re :: nursery :: __private as private ;"),
            "{out}"
        );
        assert!(
            !out.replace(":: re :: nursery", "").contains("nursery ::"),
            "{out}"
        );
    }

    #[test]
    fn on_error_keeps_the_item_and_adds_every_error() {
        let item = quote!(
            fn t<T>(n: T) {}
        );
        let out = expand(quote!(flavor = "fast"), item.clone());
        assert!(out.starts_with(&item.to_string()), "{out}");
        for message in [
            "unknown flavor `fast`",
            "needs an `async fn`",
            "cannot be generic",
            "takes no parameters",
        ] {
            assert!(out.contains(message), "{message} missing from {out}");
        }
    }

    #[test]
    fn refuses_a_second_test_attribute() {
        for attr in [
            quote!(#[test]),
            quote!(#[tokio::test(flavor = "multi_thread")]),
        ] {
            let out = expand(quote!(), quote!(#attr async fn t() {}));
            assert!(out.contains("already makes this function a test"), "{out}");
            // The item comes back without it, to add no errors of its own.
            assert!(out.starts_with("async fn t () { }"), "{out}");
        }
    }

    #[test]
    fn refuses_what_is_not_a_function() {
        let item = quote!(
            struct S;
        );
        let out = expand(quote!(), item.clone());
        assert!(out.starts_with(&item.to_string()), "{out}");
        assert!(out.contains("compile_error"), "{out}");
    }

    #[test]
    fn finds_the_last_statement() {
        let last = |body: TokenStream| {
            let tokens: Vec<TokenTree> = body.into_iter().collect();
            let start = last_statement_start(&tokens);
            tokens[start..]
                .iter()
                .cloned()
                .collect::<TokenStream>()
                .to_string()
        };
        assert_eq!(last(quote!(a)), "a");
        assert_eq!(last(quote!(;)), ";");
        assert_eq!(last(quote!(a; b)), "b");
        assert_eq!(last(quote!(a; b;)), "b ;");
        assert_eq!(
            last(quote!(a; if x { y } else { z })),
            "if x { y } else { z }"
        );
        assert_eq!(last(quote!(loop {} if x { y } else { z } w)), "w");
        assert_eq!(
            last(quote!(a; loop {} if x { y } else { z })),
            "if x { y } else { z }"
        );
        assert_eq!(
            last(quote!(a; match x { _ => y }.clone())),
            "match x { _ => y } . clone ()"
        );
        assert_eq!(
            last(quote!(a; async {}.await; S { x } == s)),
            "S { x } == s"
        );
        assert_eq!(last(quote!(while c {} Ok(()))), "Ok (())");
    }
}
