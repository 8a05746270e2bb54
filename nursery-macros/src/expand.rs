//! Code generation for the two attributes.
//!
//! - `#[nursery::test]`: the `async fn` becomes a plain `#[test]` fn that
//!   builds a tokio runtime and blocks on `__private::run_test`, which runs
//!   the body in a root scope and then checks for leaks.
//! - `#[nursery(..)]`: the `async fn` keeps its signature less the
//!   `Nursery` parameter, and its body becomes the body of a scope opened
//!   by `__private::run_scope`, with a `Builder` set up from the options.
//!   A refused one comes back as its callers will see it, beside the
//!   errors.
//!
//! The generated code names nothing of `nursery` but `__private`, and
//! nothing of tokio but what `__private::tokio` re-exports.

use std::time::Duration;

use proc_macro2::{Delimiter, Group, Ident, Literal, Span, TokenStream, TokenTree};
use quote::{ToTokens, quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{
    Attribute, Error, FnArg, GenericArgument, LitStr, PatType, PathArguments, ReturnType,
    Signature, Token, Type, Visibility, braced, token,
};

use crate::args::{Flavor, NurseryArgs, TestArgs, combined};

// ===== the function item =====

/// An `async fn` item with its body left as tokens: the body is copied into
/// the expansion untouched, so it need not be parsed (nor even be valid:
/// rustc reports its own errors there).
struct FnItem {
    attrs: Vec<Attribute>,
    vis: Visibility,
    sig: Signature,
    brace: token::Brace,
    /// `#![..]` at the top of the body: moved onto the function, since the
    /// `async` block the body becomes cannot carry them.
    inner_attrs: Vec<Attribute>,
    body: TokenStream,
}

impl Parse for FnItem {
    fn parse(input: ParseStream<'_>) -> syn::Result<FnItem> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis = input.parse()?;
        let sig = input.parse()?;
        let content;
        let brace = braced!(content in input);
        let inner_attrs = content.call(Attribute::parse_inner)?;
        let body = content.parse()?;
        Ok(FnItem {
            attrs,
            vis,
            sig,
            brace,
            inner_attrs,
            body,
        })
    }
}

fn with_error(mut item: TokenStream, error: Error) -> TokenStream {
    item.extend(error.into_compile_error());
    item
}

// ===== #[nursery::test] =====

/// Expands `#[nursery::test(args)] item`.
///
/// On any error the user's item comes back as written (less a second test
/// attribute), followed by every error as a `compile_error!`: the rest of
/// the crate still type-checks and the IDE keeps working (as tokio-macros
/// does).
pub(crate) fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    let input: FnItem = match syn::parse2(item.clone()) {
        Ok(input) => input,
        Err(error) => return with_error(item, error),
    };
    // Every error at once: the options' first, then the function's.
    match (TestArgs::parse(args), input.check_test()) {
        (Ok(args), Ok(())) => input.expand_test(&args),
        (Err(mut error), Err(more)) => {
            error.combine(more);
            with_error(input.unexpanded_test(), error)
        }
        (Err(error), Ok(())) | (Ok(_), Err(error)) => with_error(input.unexpanded_test(), error),
    }
}

impl FnItem {
    /// Refuses what cannot become a test, each error at its token.
    fn check_test(&self) -> syn::Result<()> {
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
            // `#[nursery]` below would take its `Nursery` parameter out,
            // had it expanded first.
            match self.attrs.iter().find(|attr| is_nursery_attribute(attr)) {
                Some(nursery) => errors.push(Error::new_spanned(
                    nursery,
                    "write `#[nursery]` above `#[nursery::test]`: attributes expand from the \
                     top, so `#[nursery::test]` sees the `Nursery` parameter that `#[nursery]` \
                     would have taken out",
                )),
                None => errors.push(Error::new_spanned(
                    &sig.inputs,
                    "a `#[nursery::test]` function takes no parameters",
                )),
            }
        }
        for attr in self.attrs.iter().chain(&self.inner_attrs) {
            if is_test_attribute(attr) {
                errors.push(Error::new_spanned(
                    attr,
                    "`#[nursery::test]` already makes this function a test: remove this attribute",
                ));
            }
        }
        combined(errors)
    }

    fn expand_test(self, args: &TestArgs) -> TokenStream {
        let FnItem {
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
        let timeout = match args.timeout {
            Some((timeout, span)) => {
                let timeout = duration(timeout, span);
                quote_spanned!(at=> ::core::option::Option::Some(#timeout))
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
                return #runtime.block_on(#private::run_test(#leak_grace, #timeout, #future));
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
    fn unexpanded_test(&self) -> TokenStream {
        let FnItem {
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

// ===== #[nursery] =====

/// Expands `#[nursery(args)] item`.
///
/// On any error what comes back is the function as its callers see it
/// ([`FnItem::caller_view`]), followed by every error as a
/// `compile_error!`: callers get no errors of their own (a missing
/// argument, a missing `.await`), so the attribute's are the only ones,
/// and the body still type-checks for the IDE.
pub(crate) fn nursery(args: TokenStream, item: TokenStream) -> TokenStream {
    let input: FnItem = match syn::parse2(item.clone()) {
        Ok(input) => input,
        Err(error) => {
            return match syn::parse2::<FnDecl>(item.clone()) {
                Ok(decl) => decl.refused(args),
                Err(_) => with_error(item, error),
            };
        }
    };
    let (shape, errors) = inspect_scope_fn(&input.attrs, &input.sig, Some(&input.body));
    // Every error at once: the options' first, then the function's.
    match (NurseryArgs::parse(args), combined(errors)) {
        (Ok(args), Ok(())) => input.expand_scope_fn(&args, shape.nursery),
        (Err(mut error), Err(more)) => {
            error.combine(more);
            with_error(input.caller_view(&shape), error)
        }
        (Err(error), Ok(())) | (Ok(_), Err(error)) => with_error(input.caller_view(&shape), error),
    }
}

const MUST_RETURN_RESULT: &str = "a `#[nursery]` function must return `Result<T, E>` with \
                                  `E: From<nursery::Interrupted>`: a timeout or cancellation \
                                  of its scope is returned as an `E`";

/// What `#[nursery]` makes of a function's signature, errors aside.
struct Shape {
    /// The parameter the scope's `Nursery` is handed to.
    nursery: Option<usize>,
    /// The parameters callers do not pass: the `Nursery` one and, on the
    /// error path, those refused as a misplaced one (a second `Nursery`,
    /// a `&Nursery<E>`).
    hidden: Vec<usize>,
    /// Whether callers see an `async fn`: not when the function is a plain
    /// `fn` made by an attribute above, or one that returns a future.
    asynchronous: bool,
    /// Whether the body fits the signature callers see: not without a
    /// return type, as the body was written for a `Result`.
    keep_body: bool,
}

/// Why a `#[nursery]` function is not an `async fn`.
enum NotAsync {
    /// No sign of one: `async` was left out.
    Forgotten,
    /// An `async fn` that the attribute named, written above `#[nursery]`
    /// and so expanded first, has made a plain `fn` blocking on its body.
    ExpandedBy(&'static str),
    /// A `fn` returning a future (`impl Future<..>`,
    /// `Pin<Box<dyn Future<..>>>`), as `#[async_trait]` makes of an
    /// `async fn`.
    ReturnsFuture,
}

/// Refuses what cannot run as the body of a scope, each error at its
/// token, and finds the `Nursery` parameter. `body` is `None` for a
/// declaration without one.
fn inspect_scope_fn(
    attrs: &[Attribute],
    sig: &Signature,
    body: Option<&TokenStream>,
) -> (Shape, Vec<Error>) {
    let mut errors = Vec::new();
    for attr in attrs.iter().filter(|attr| is_nursery_attribute(attr)) {
        errors.push(Error::new_spanned(
            attr,
            "a second `#[nursery]`: a function runs in one scope (to open another inside it, \
             call `nursery::scope` or `Nursery::builder()` in the body)",
        ));
    }

    let not_async = match sig.asyncness {
        Some(_) => None,
        None => Some(why_not_async(attrs, sig, body)),
    };
    match &not_async {
        None => {}
        Some(NotAsync::Forgotten) => errors.push(Error::new(
            sig.fn_token.span,
            "`#[nursery]` needs an `async fn`: add `async` before `fn`",
        )),
        Some(NotAsync::ExpandedBy(attr)) => errors.push(Error::new(
            Span::call_site(),
            format!(
                "write `#[nursery]` above `{attr}`: attributes expand from the top, and \
                 `{attr}` has already made this `async fn` a plain `fn` that blocks on its body"
            ),
        )),
        Some(NotAsync::ReturnsFuture) => errors.push(Error::new(
            sig.fn_token.span,
            "`#[nursery]` needs an `async fn`, and this `fn` returns a future: write it as an \
             `async fn` that returns the future's output (under `#[async_trait]`, which turns \
             an `async fn` into such a `fn` first, use Rust's own `async fn` in traits)",
        )),
    }
    let asynchronous = matches!(not_async, None | Some(NotAsync::Forgotten));

    let mut nursery = None;
    let mut hidden = Vec::new();
    let mut misplaced = Vec::new();
    for (index, arg) in sig.inputs.iter().enumerate() {
        let FnArg::Typed(arg) = arg else {
            continue;
        };
        if is_nursery(&arg.ty) {
            hidden.push(index);
            if nursery.is_some() {
                errors.push(Error::new_spanned(
                    arg,
                    "a second `Nursery` parameter: a `#[nursery]` function opens one scope, \
                     so it takes at most one (clone it where a second handle is needed)",
                ));
            } else {
                nursery = Some(index);
            }
        } else if let Some(message) = misplaced_nursery(&arg.ty) {
            misplaced.push((index, Error::new_spanned(&arg.ty, message)));
        }
    }
    // Beside the scope's own `Nursery`, a `&Nursery<E>` is plainly a
    // caller's: an ordinary argument.
    if nursery.is_none() {
        for (index, error) in misplaced {
            hidden.push(index);
            errors.push(error);
        }
        hidden.sort_unstable();
    }

    // The return type of a plain `fn` made by another attribute is that
    // attribute's business.
    let mut keep_body = true;
    if asynchronous {
        match &sig.output {
            ReturnType::Type(_, ty) if may_be_result(ty) => {}
            ReturnType::Type(_, ty) => errors.push(Error::new_spanned(ty, MUST_RETURN_RESULT)),
            ReturnType::Default => {
                keep_body = false;
                // From `fn` to the `)` after the parameters: where a return
                // type would go.
                let mut head = sig.fn_token.to_token_stream();
                sig.paren_token.surround(&mut head, |_| {});
                let message = format!("{MUST_RETURN_RESULT}; add `-> Result<(), E>`");
                errors.push(Error::new_spanned(head, message));
            }
        }
    }

    let shape = Shape {
        nursery,
        hidden,
        asynchronous,
        keep_body,
    };
    (shape, errors)
}

/// Tells a forgotten `async` from one an attribute above has expanded
/// away, by the signs that attribute leaves: tokio's and `#[nursery::test]`'s
/// expansions start with `let body = async ..` and block on it.
fn why_not_async(attrs: &[Attribute], sig: &Signature, body: Option<&TokenStream>) -> NotAsync {
    if body.is_some_and(blocks_on_body) {
        let body = body.into_iter().flat_map(|body| body.clone());
        return NotAsync::ExpandedBy(if contains_ident(body, &|ident| ident == "run_test") {
            "#[nursery::test]"
        } else if attrs.iter().any(is_test_attribute) {
            "#[tokio::test]"
        } else {
            "#[tokio::main]"
        });
    }
    let future = |ident: &Ident| ident.to_string().ends_with("Future");
    match &sig.output {
        ReturnType::Type(_, ty) if contains_ident(ty.to_token_stream(), &future) => {
            NotAsync::ReturnsFuture
        }
        _ => NotAsync::Forgotten,
    }
}

/// Whether the body starts a statement `let body = async ..`, as the
/// expansions of `#[tokio::main]`, `#[tokio::test]` and `#[nursery::test]`
/// do.
fn blocks_on_body(body: &TokenStream) -> bool {
    let tokens: Vec<TokenTree> = body.clone().into_iter().collect();
    tokens.windows(4).any(|window| {
        matches!(
            window,
            [
                TokenTree::Ident(keyword),
                TokenTree::Ident(name),
                TokenTree::Punct(equals),
                TokenTree::Ident(asynchronous),
            ] if keyword == "let" && name == "body" && equals.as_char() == '=' && asynchronous == "async"
        )
    })
}

/// Whether any identifier in `tokens`, at any depth, passes `wanted`.
fn contains_ident(
    tokens: impl IntoIterator<Item = TokenTree>,
    wanted: &dyn Fn(&Ident) -> bool,
) -> bool {
    tokens.into_iter().any(|token| match token {
        TokenTree::Ident(ident) => wanted(&ident),
        TokenTree::Group(group) => contains_ident(group.stream(), wanted),
        _ => false,
    })
}

/// `#[nursery]`, `#[nursery::nursery]`, `#[nursery(..)]`..: an attribute
/// whose path ends in `nursery`.
fn is_nursery_attribute(attr: &Attribute) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|segment| segment.ident == "nursery")
}

/// Why a parameter's type looks meant for the scope's `Nursery` but would
/// be an ordinary argument: a reference to one, or a tuple holding one.
fn misplaced_nursery(ty: &Type) -> Option<&'static str> {
    match ty {
        Type::Reference(reference) if is_nursery(&reference.elem) => Some(
            "take the scope's `Nursery` by value, as in `n: Nursery<E>`: `#[nursery]` hands \
             its nursery to a `Nursery<E>` parameter only, so a reference to one is an \
             ordinary argument that callers must pass",
        ),
        Type::Tuple(tuple) if tuple.elems.iter().any(is_nursery) => Some(
            "give the scope's `Nursery` a parameter of its own, as in `n: Nursery<E>`: \
             `#[nursery]` hands its nursery to a `Nursery<E>` parameter only, so a tuple \
             holding one is an ordinary argument that callers must pass",
        ),
        Type::Group(group) => misplaced_nursery(&group.elem),
        Type::Paren(paren) => misplaced_nursery(&paren.elem),
        _ => None,
    }
}

/// Whether `ty` may be a `Result`: any path (`Result<T, E>`,
/// `io::Result<T>`, `Res<T>`) may name one, and the type checker tells
/// (`__private::ReturnsResult`); a tuple, a reference, `impl Trait` and
/// the like never do.
fn may_be_result(ty: &Type) -> bool {
    match ty {
        Type::Path(_) | Type::Macro(_) | Type::Verbatim(_) => true,
        Type::Group(group) => may_be_result(&group.elem),
        Type::Paren(paren) => may_be_result(&paren.elem),
        _ => false,
    }
}

/// A function declared without a body (`async fn f(..) -> R;`, in a
/// trait), which `#[nursery]` refuses.
struct FnDecl {
    attrs: Vec<Attribute>,
    vis: Visibility,
    sig: Signature,
    semi: Token![;],
}

impl Parse for FnDecl {
    fn parse(input: ParseStream<'_>) -> syn::Result<FnDecl> {
        Ok(FnDecl {
            attrs: input.call(Attribute::parse_outer)?,
            vis: input.parse()?,
            sig: input.parse()?,
            semi: input.parse()?,
        })
    }
}

impl FnDecl {
    /// The declaration as callers see it (less the `Nursery` parameter,
    /// `async`), so that the methods of `impl`s under `#[nursery]` match
    /// it, with every error.
    fn refused(self, args: TokenStream) -> TokenStream {
        let (shape, mut errors) = inspect_scope_fn(&self.attrs, &self.sig, None);
        errors.insert(
            0,
            Error::new(
                self.semi.span,
                "`#[nursery]` needs a function body: declare the method in the trait without \
                 the `Nursery` parameter, and write `#[nursery]` on its body in each `impl`",
            ),
        );
        if let Err(error) = NurseryArgs::parse(args) {
            errors.insert(0, error);
        }
        let (attrs, sig, _) = caller_signature(&self.attrs, self.sig, &shape);
        let FnDecl { vis, semi, .. } = self;
        let error = combined(errors).expect_err("a declaration is refused");
        with_error(quote!(#(#attrs)* #vis #sig #semi), error)
    }
}

/// The signature callers see, for the error path: less the parameters
/// in `shape.hidden`, which it hands back, `async` if it is to be one, and
/// the attributes less a second `#[nursery]`.
fn caller_signature<'a>(
    attrs: &'a [Attribute],
    mut sig: Signature,
    shape: &Shape,
) -> (Vec<&'a Attribute>, Signature, Vec<PatType>) {
    let attrs = attrs
        .iter()
        .filter(|attr| !is_nursery_attribute(attr))
        .collect();
    let mut hidden = Vec::new();
    let mut kept = Punctuated::new();
    for (at, arg) in std::mem::take(&mut sig.inputs).into_iter().enumerate() {
        match arg {
            FnArg::Typed(param) if shape.hidden.contains(&at) => hidden.push(param),
            arg => kept.push(arg),
        }
    }
    sig.inputs = kept;
    if shape.asynchronous && sig.asyncness.is_none() {
        sig.asyncness = Some(Token![async](sig.fn_token.span));
    }
    (attrs, sig, hidden)
}

impl FnItem {
    /// The function as its callers see it, for the error path: the
    /// signature of [`caller_signature`], and the body with the parameters
    /// callers do not pass bound to a value that never comes:
    ///
    /// ```text
    /// async fn f(args..) -> R {
    ///     let n: Nursery<E> = ::core::option::Option::None.unwrap();
    ///     body
    /// }
    /// ```
    ///
    /// Calls then type-check as they will once the attribute is fixed, and
    /// so does the body. Without a return type, the body (written for a
    /// `Result`) goes into an `async` block of `Result<_, E>` that is never
    /// run, `E` the `Nursery`'s error type; without a `Nursery` either, it
    /// is left out.
    fn caller_view(self, shape: &Shape) -> TokenStream {
        let error_type = shape
            .nursery
            .and_then(|index| match &self.sig.inputs[index] {
                FnArg::Typed(param) => nursery_error_type(&param.ty).map(ToTokens::to_token_stream),
                FnArg::Receiver(_) => None,
            });
        let (attrs, sig, hidden) = caller_signature(&self.attrs, self.sig, shape);
        let FnItem {
            vis,
            brace,
            inner_attrs,
            body,
            ..
        } = self;
        let mut item = quote!(#(#attrs)*);
        if !shape.keep_body && error_type.is_none() {
            item.extend(quote!(#[allow(unused_variables)]));
        }
        item.extend(quote!(#vis #sig));
        brace.surround(&mut item, |tokens| {
            tokens.extend(quote!(#(#inner_attrs)*));
            // `None.unwrap()`, not `unreachable!()`: rustc does not know it
            // diverges, so the body is not unreachable code and its use of
            // the parameter counts.
            for PatType { attrs, pat, ty, .. } in hidden {
                tokens.extend(quote! {
                    #(#attrs)* let #pat: #ty = ::core::option::Option::None.unwrap();
                });
            }
            if shape.keep_body {
                body.to_tokens(tokens);
            } else if let Some(error_type) = error_type {
                let result: Type = syn::parse_quote!(::core::result::Result<_, #error_type>);
                let mut block = quote!(async move);
                brace.surround(&mut block, |tokens| {
                    tokens.extend(fake_return(&result));
                    body.to_tokens(tokens);
                });
                tokens.extend(quote!(let _ = #block;));
            }
        });
        item
    }

    /// The function, less its `Nursery` parameter (the one at `nursery`),
    /// with its body run by `run_scope`:
    ///
    /// ```text
    /// async fn f(args..) -> Result<T, E> {
    ///     (__private::run_scope)(
    ///         __private::Nursery::builder().limit(8)..,
    ///         move |nursery: __private::Nursery<E>| async move {
    ///             if false {
    ///                 let returned: Result<T, E> = loop {};
    ///                 return returned;
    ///             }
    ///             let n: Nursery<E> = nursery;
    ///             body
    ///         },
    ///     )
    ///     .await
    /// }
    /// ```
    fn expand_scope_fn(self, args: &NurseryArgs, nursery: Option<usize>) -> TokenStream {
        let FnItem {
            attrs,
            vis,
            mut sig,
            brace,
            inner_attrs,
            body,
        } = self;
        let nursery_param = nursery.map(|index| remove_param(&mut sig, index));
        let inner_attrs = inner_attrs.into_iter().map(|mut attr| {
            attr.style = syn::AttrStyle::Outer;
            attr
        });

        // The call to `run_scope` has the span of the function's name:
        // `run_scope` is `#[track_caller]`, so the scope records the user's
        // function as its location, and type errors of the call (an `E`
        // without `From<Interrupted>`) point there too. A user token's span
        // (not `call_site`, which is the attribute) is what makes
        // `Location::caller()` name the function.
        let at = sig.ident.span();
        let private = private_path(args, at);
        let builder = builder(args, &private, at);

        let ReturnType::Type(_, ret) = &sig.output else {
            unreachable!("inspect_scope_fn refuses a function without a return type");
        };
        // The declared return type, as a marker argument before the
        // closure: `run_scope` then knows it and its error type (aliases
        // such as `anyhow::Result<T>` included) before the body is checked,
        // so a `Nursery<Other>` parameter is reported at its type ("expected
        // `Nursery<Other>`, found `Nursery<E>`") rather than as a mismatch
        // inside `run_scope`. At the name, as the call is: a type that is
        // not a `Result` fails `run_scope`'s bound (`ReturnsResult`) there,
        // once.
        let declared = infer_impl_traits(ret.to_token_stream());
        let marker = quote_spanned!(at=> #private::returns::<#declared>());
        // `mixed_site`: the user's body cannot see it, nor clash with it.
        let handle = Ident::new("nursery", Span::mixed_site());
        let binding = nursery_param.map(|param| {
            let PatType { attrs, pat, ty, .. } = param;
            // At the parameter's type, which a type mismatch then names.
            let value = Ident::new("nursery", Span::mixed_site().located_at(ty.span()));
            quote!(#(#attrs)* let #pat: #ty = #value;)
        });
        let returns = fake_return(ret);
        let mut async_body = quote!(async move);
        brace.surround(&mut async_body, |tokens| {
            tokens.extend(returns);
            tokens.extend(binding);
            body.to_tokens(tokens);
        });

        // The path in parentheses at the name: the call then starts at the
        // name even when `crate = ".."` gives the path the span of its
        // string (where errors about the path then point).
        let call = quote_spanned! {at=>
            (#private::run_scope)(#builder, #marker, move |#handle| #async_body).await
        };
        let mut expanded = quote! {
            #(#attrs)*
            #(#inner_attrs)*
            #vis #sig
        };
        brace.surround(&mut expanded, |tokens| tokens.extend(call));
        expanded
    }
}

/// The path to `__private`, at `at` by default. Under `crate = ".."`, the
/// path has the span of its string, `__private` included: a path that does
/// not lead to nursery is then one error, at the string (rustc reports
/// each unresolved path once per span).
fn private_path(args: &NurseryArgs, at: Span) -> TokenStream {
    match &args.crate_path {
        Some((path, string)) => {
            let private = Ident::new("__private", *string);
            quote_spanned!(*string=> #path::#private)
        }
        None => quote_spanned!(at=> ::nursery::__private),
    }
}

/// A `return` of the declared return type that never runs, first in the
/// body's `async` block: it fixes the block's output type before the body
/// is checked, so `?` and `return` infer as in the function itself, and a
/// body of the wrong type is reported at the offending expression
/// ("expected `u32`, found `&str`"), as it would be without the attribute.
/// (tracing-attributes does the same for `#[instrument]` on `async fn`.)
fn fake_return(ret: &Type) -> TokenStream {
    // `impl Trait` is not allowed in a `let`: the body's value stands in
    // for it (`_`).
    let ret = infer_impl_traits(ret.to_token_stream());
    let value = Ident::new("returned", Span::mixed_site());
    quote! {
        #[allow(
            unreachable_code,
            clippy::diverging_sub_expression,
            clippy::empty_loop,
            clippy::let_unit_value,
            clippy::needless_return,
            clippy::unreachable
        )]
        if false {
            let #value: #ret = loop {};
            return #value;
        }
    }
}

/// `Nursery::builder()` and a call for each option, each call at the
/// option's value (a method missing from the library, or a panic, points
/// there).
fn builder(args: &NurseryArgs, private: &TokenStream, at: Span) -> TokenStream {
    let NurseryArgs {
        name,
        limit,
        timeout,
        grace,
        leak_grace,
        collect_errors,
        max_suppressed,
        rate,
        crate_path: _,
    } = args;
    let mut builder = quote_spanned!(at=> #private::Nursery::builder());
    if let Some((name, span)) = name {
        let name = LitStr::new(name, *span);
        builder.extend(quote_spanned!(*span=> .name(#name)));
    }
    if let Some((limit, span)) = limit {
        let limit = spanned(Literal::usize_unsuffixed(*limit), *span);
        builder.extend(quote_spanned!(*span=> .limit(#limit)));
    }
    for (method, setting) in [
        ("timeout", timeout),
        ("grace", grace),
        ("leak_grace", leak_grace),
    ] {
        if let Some((value, span)) = setting {
            let method = Ident::new(method, *span);
            let value = duration(*value, *span);
            builder.extend(quote_spanned!(*span=> .#method(#value)));
        }
    }
    if let Some(span) = collect_errors {
        builder.extend(quote_spanned!(*span=> .collect_errors()));
    }
    if let Some((max, span)) = max_suppressed {
        let max = spanned(Literal::usize_unsuffixed(*max), *span);
        builder.extend(quote_spanned!(*span=> .max_suppressed(#max)));
    }
    if let Some((rate, span)) = rate {
        let starts = spanned(Literal::u32_unsuffixed(rate.starts), *span);
        let per = duration(rate.per, *span);
        builder.extend(quote_spanned!(*span=> .rate(#starts, #per)));
    }
    builder
}

/// Takes the parameter at `index` out of the signature.
fn remove_param(sig: &mut Signature, index: usize) -> PatType {
    let mut removed = None;
    let mut kept = Punctuated::new();
    for (at, arg) in std::mem::take(&mut sig.inputs).into_iter().enumerate() {
        match arg {
            FnArg::Typed(param) if at == index => removed = Some(param),
            arg => kept.push(arg),
        }
    }
    sig.inputs = kept;
    removed.expect("the `Nursery` parameter is a typed parameter at `index`")
}

/// `Nursery<E>`, under any path (`nursery::Nursery<E>`): a path type whose
/// last segment is `Nursery` with one generic argument.
fn is_nursery(ty: &Type) -> bool {
    nursery_error_type(ty).is_some()
}

/// The `E` of `Nursery<E>`.
fn nursery_error_type(ty: &Type) -> Option<&GenericArgument> {
    let segment = last_segment(ty).filter(|segment| segment.ident == "Nursery")?;
    match &segment.arguments {
        PathArguments::AngleBracketed(args) if args.args.len() == 1 => args.args.first(),
        _ => None,
    }
}

fn last_segment(ty: &Type) -> Option<&syn::PathSegment> {
    match ty {
        Type::Path(path) => path.path.segments.last(),
        Type::Group(group) => last_segment(&group.elem),
        Type::Paren(paren) => last_segment(&paren.elem),
        _ => None,
    }
}

/// `ty` with each `impl Trait` in it replaced by `_`, for a `let` or a
/// closure parameter, where `impl Trait` is not allowed. The `impl` type
/// runs to the next `,` or unmatched `>` (`Result<impl Iterator<Item = u8>, E>`);
/// parenthesised and bracketed groups are handled recursively.
fn infer_impl_traits(ty: TokenStream) -> TokenStream {
    let mut out = TokenStream::new();
    let mut tokens = ty.into_iter().peekable();
    while let Some(token) = tokens.next() {
        match token {
            TokenTree::Ident(ident) if ident == "impl" => {
                out.extend([TokenTree::Ident(Ident::new("_", ident.span()))]);
                let mut depth = 0usize;
                let mut after_dash = false;
                while let Some(next) = tokens.peek() {
                    if let TokenTree::Punct(punct) = next {
                        match punct.as_char() {
                            ',' if depth == 0 => break,
                            '>' if depth == 0 && !after_dash => break,
                            '<' => depth += 1,
                            '>' if !after_dash => depth -= 1,
                            _ => {}
                        }
                        after_dash = punct.as_char() == '-';
                    } else {
                        after_dash = false;
                    }
                    tokens.next();
                }
            }
            TokenTree::Group(group) => {
                let mut inner = Group::new(group.delimiter(), infer_impl_traits(group.stream()));
                inner.set_span(group.span());
                out.extend([TokenTree::Group(inner)]);
            }
            other => out.extend([other]),
        }
    }
    out
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
                        ::core::option::Option::None,
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
            out.contains(
                "private :: run_test (:: core :: option :: Option :: None , \
                 :: core :: option :: Option :: None , body)"
            ),
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
    fn asks_for_nursery_above_when_it_is_below_with_its_parameter() {
        let out = expand(
            quote!(),
            quote!(
                #[nursery(limit = 2)]
                async fn t(n: Nursery<E>) -> Result<(), E> {
                    Ok(())
                }
            ),
        );
        assert!(
            out.contains("write `#[nursery]` above `#[nursery::test]`"),
            "{out}"
        );
        assert!(!out.contains("takes no parameters"), "{out}");
        // `#[nursery]` is kept, to take the parameter out.
        assert!(
            out.starts_with("# [nursery (limit = 2)] async fn t"),
            "{out}"
        );
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

    // ===== #[nursery] =====

    fn expand_nursery(args: TokenStream, item: TokenStream) -> String {
        nursery(args, item).to_string()
    }

    /// The fake return the body starts with, for a return type `ret`.
    fn returns(ret: TokenStream) -> TokenStream {
        quote! {
            #[allow(
                unreachable_code,
                clippy::diverging_sub_expression,
                clippy::empty_loop,
                clippy::let_unit_value,
                clippy::needless_return,
                clippy::unreachable
            )]
            if false {
                let returned: #ret = loop {};
                return returned;
            }
        }
    }

    #[test]
    fn nursery_runs_the_body_in_a_configured_scope() {
        let out = expand_nursery(
            quote!(
                limit = 8,
                timeout = "5s",
                grace = "100ms",
                leak_grace = "1500ms",
                name = "crawl",
                collect_errors,
                rate = "5/100ms"
            ),
            quote! {
                /// Docs.
                #[inline]
                pub(crate) async fn crawl(n: Nursery<MyError>, urls: Vec<Url>) -> Result<Vec<Page>, MyError> {
                    #![allow(unused)]
                    Ok(fetch(&n, urls).await?)
                }
            },
        );
        let returns = returns(quote!(Result<Vec<Page>, MyError>));
        let expected = quote! {
            #[doc = r" Docs."]
            #[inline]
            #[allow(unused)]
            pub(crate) async fn crawl(urls: Vec<Url>) -> Result<Vec<Page>, MyError> {
                (::nursery::__private::run_scope)(
                    ::nursery::__private::Nursery::builder()
                        .name("crawl")
                        .limit(8)
                        .timeout(::core::time::Duration::new(5, 0))
                        .grace(::core::time::Duration::new(0, 100000000))
                        .leak_grace(::core::time::Duration::new(1, 500000000))
                        .collect_errors()
                        .rate(5, ::core::time::Duration::new(0, 100000000)),
                    ::nursery::__private::returns::<Result<Vec<Page>, MyError> >(),
                    move |nursery| async move {
                        #returns
                        let n: Nursery<MyError> = nursery;
                        Ok(fetch(&n, urls).await?)
                    }
                )
                .await
            }
        };
        assert_eq!(out, expected.to_string());
    }

    #[test]
    fn nursery_without_options_or_nursery_parameter_still_opens_a_scope() {
        let out = expand_nursery(
            quote!(),
            quote! {
                async fn f(x: u32) -> Result<u32, E> { Ok(x) }
            },
        );
        let returns = returns(quote!(Result<u32, E>));
        let expected = quote! {
            async fn f(x: u32) -> Result<u32, E> {
                (::nursery::__private::run_scope)(
                    ::nursery::__private::Nursery::builder(),
                    ::nursery::__private::returns::<Result<u32, E> >(),
                    move |nursery| async move {
                        #returns
                        Ok(x)
                    }
                )
                .await
            }
        };
        assert_eq!(out, expected.to_string());
    }

    #[test]
    fn nursery_keeps_receivers_generics_and_other_parameters() {
        let out = expand_nursery(
            quote!(),
            quote! {
                async fn f<'a, T: Send>(&'a mut self, x: &'a T, mut n: nursery::Nursery<E>, y: impl Sized) -> Result<&'a T, E>
                where
                    T: Sync,
                {
                    Ok(x)
                }
            },
        );
        let head = quote! {
            async fn f<'a, T: Send>(&'a mut self, x: &'a T, y: impl Sized) -> Result<&'a T, E>
            where
                T: Sync,
        };
        assert!(out.starts_with(&format!("{head} {{")), "{out}");
        assert!(
            out.contains("let mut n : nursery :: Nursery < E > = nursery ;"),
            "{out}"
        );
    }

    #[test]
    fn nursery_leaves_the_error_type_of_a_result_alias_to_inference() {
        let out = expand_nursery(
            quote!(),
            quote! {
                async fn f(n: Nursery<MyError>) -> io::Result<u32> { Ok(1) }
            },
        );
        assert!(out.contains("move | nursery | async move"), "{out}");
        assert!(
            out.contains("let returned : io :: Result < u32 > = loop { } ;"),
            "{out}"
        );
    }

    #[test]
    fn nursery_replaces_impl_trait_in_the_return_type() {
        let out = expand_nursery(
            quote!(),
            quote! {
                async fn f() -> Result<impl Iterator<Item = impl Display>, E> { Ok(None.into_iter()) }
            },
        );
        assert!(
            out.contains("let returned : Result < _ , E > = loop { } ;"),
            "{out}"
        );
        // The signature keeps it.
        assert!(
            out.contains("-> Result < impl Iterator < Item = impl Display > , E >"),
            "{out}"
        );
    }

    #[test]
    fn nursery_uses_the_crate_option_as_the_path_to_nursery() {
        let out = expand_nursery(
            quote!(crate = "::re::nursery"),
            quote!(
                async fn f(n: Nursery<E>) -> Result<(), E> {
                    Ok(())
                }
            ),
        );
        assert!(
            out.contains("(:: re :: nursery :: __private :: run_scope)"),
            "{out}"
        );
        assert!(
            out.contains(":: re :: nursery :: __private :: Nursery :: builder ()"),
            "{out}"
        );
        assert!(
            !out.replace(":: re :: nursery", "").contains("nursery ::"),
            "{out}"
        );
    }

    #[test]
    fn nursery_on_error_gives_callers_their_signature_and_every_error() {
        let out = expand_nursery(
            quote!(limit = 0),
            quote! {
                /// Docs.
                fn f(n: Nursery<E>, x: u32, m: Nursery<E>) -> u32 {
                    #![allow(unused)]
                    7
                }
            },
        );
        let expected_item = quote! {
            #[doc = r" Docs."]
            async fn f(x: u32) -> u32 {
                #![allow(unused)]
                let n: Nursery<E> = ::core::option::Option::None.unwrap();
                let m: Nursery<E> = ::core::option::Option::None.unwrap();
                7
            }
        };
        assert!(out.starts_with(&expected_item.to_string()), "{out}");
        for message in [
            "`limit` must be at least 1",
            "`#[nursery]` needs an `async fn`",
            "a second `Nursery` parameter",
        ] {
            assert!(out.contains(message), "{message} missing from {out}");
        }
    }

    #[test]
    fn nursery_without_a_return_type_still_checks_the_body_as_a_result() {
        let out = expand_nursery(
            quote!(),
            quote!(
                async fn f(n: Nursery<MyError>, x: u32) {
                    n.check()?;
                    Ok(())
                }
            ),
        );
        assert!(out.contains("add `-> Result<(), E>`"), "{out}");
        let returns = returns(quote!(::core::result::Result<_, MyError>));
        let expected_item = quote! {
            async fn f(x: u32) {
                let n: Nursery<MyError> = ::core::option::Option::None.unwrap();
                let _ = async move {
                    #returns
                    n.check()?;
                    Ok(())
                };
            }
        };
        assert!(out.starts_with(&expected_item.to_string()), "{out}");

        // Without a `Nursery` either, there is no error type to check it
        // with: it is left out.
        let out = expand_nursery(
            quote!(),
            quote!(
                async fn f(x: u32) {
                    Ok(x)
                }
            ),
        );
        let expected_item = quote!(
            #[allow(unused_variables)]
            async fn f(x: u32) {}
        );
        assert!(out.starts_with(&expected_item.to_string()), "{out}");
    }

    #[test]
    fn nursery_refuses_a_declaration_and_keeps_it_as_callers_see_it() {
        let out = expand_nursery(
            quote!(),
            quote!(
                async fn f(&self, n: Nursery<E>, x: u32) -> Result<(), E>;
            ),
        );
        let expected_item = quote!(
            async fn f(&self, x: u32) -> Result<(), E>;
        );
        assert!(out.starts_with(&expected_item.to_string()), "{out}");
        assert!(out.contains("`#[nursery]` needs a function body"), "{out}");
    }

    #[test]
    fn nursery_refuses_a_second_nursery_attribute() {
        for attr in [
            quote!(#[nursery]),
            quote!(#[nursery::nursery(name = "inner")]),
        ] {
            let out = expand_nursery(
                quote!(),
                quote!(#attr async fn f(n: Nursery<E>) -> Result<(), E> { Ok(()) }),
            );
            assert!(out.contains("a second `#[nursery]`"), "{out}");
            // Left out, so that it opens no scope of its own.
            assert!(
                out.starts_with("async fn f () -> Result < () , E >"),
                "{out}"
            );
        }
    }

    #[test]
    fn nursery_refuses_a_nursery_by_reference_or_in_a_tuple() {
        for (param, message) in [
            (
                quote!(n: &Nursery<E>),
                "take the scope's `Nursery` by value",
            ),
            (
                quote!(n: &mut Nursery<E>),
                "take the scope's `Nursery` by value",
            ),
            (
                quote!((n, x): (Nursery<E>, u32)),
                "give the scope's `Nursery` a parameter of its own",
            ),
        ] {
            let out = expand_nursery(
                quote!(),
                quote!(async fn f(#param, y: u8) -> Result<(), E> { Ok(()) }),
            );
            assert!(out.contains(message), "{out}");
            // Callers do not pass it.
            assert!(out.starts_with("async fn f (y : u8)"), "{out}");
        }
    }

    #[test]
    fn nursery_takes_a_reference_beside_its_own_nursery_as_an_argument() {
        let out = expand_nursery(
            quote!(),
            quote!(
                async fn f(n: Nursery<E>, outer: &Nursery<E>) -> Result<(), E> {
                    Ok(())
                }
            ),
        );
        assert!(!out.contains("compile_error"), "{out}");
        assert!(
            out.starts_with("async fn f (outer : & Nursery < E >)"),
            "{out}"
        );
    }

    #[test]
    fn nursery_tells_an_attribute_above_from_a_forgotten_async() {
        let expanded = |attrs: TokenStream, body: TokenStream| {
            expand_nursery(quote!(), quote!(#attrs fn f() -> Result<(), E> { #body }))
        };
        let tokio = quote! {
            let body = async { Ok(()) };
            return Builder::new_current_thread().enable_all().build().unwrap().block_on(body);
        };
        let ours = quote! {
            let body = async move { Ok(()) };
            { return runtime.block_on(private::run_test(None, body)); }
        };
        for (attrs, body, above) in [
            (quote!(), tokio.clone(), "`#[tokio::main]`"),
            (
                quote!(#[::core::prelude::v1::test]),
                tokio,
                "`#[tokio::test]`",
            ),
            (
                quote!(#[::core::prelude::v1::test]),
                ours,
                "`#[nursery::test]`",
            ),
        ] {
            let out = expanded(attrs, body);
            assert!(
                out.contains(&format!("write `#[nursery]` above {above}")),
                "{out}"
            );
            // Still the plain `fn` the attribute above made.
            let item = out.split("compile_error").next().unwrap();
            assert!(!item.contains("async fn"), "{out}");
        }
        let out = expanded(quote!(), quote!(Ok(())));
        assert!(out.contains("add `async` before `fn`"), "{out}");
        assert!(out.starts_with("async fn f ()"), "{out}");
    }

    #[test]
    fn nursery_refuses_a_fn_returning_a_future() {
        for ret in [
            quote!(impl Future<Output = Result<(), E>>),
            quote!(Pin<Box<dyn Future<Output = Result<(), E>> + Send + 'async_trait>>),
        ] {
            let out = expand_nursery(quote!(), quote!(fn f() -> #ret { loop {} }));
            assert!(out.contains("and this `fn` returns a future"), "{out}");
            assert!(out.starts_with("fn f ()"), "{out}");
        }
    }

    #[test]
    fn nursery_leaves_any_path_return_type_to_the_type_checker() {
        for ret in [
            quote!(Result<(), E>),
            quote!(std::result::Result<(), E>),
            quote!(anyhow::Result<()>),
            quote!(crate::Result),
            quote!(Res<u32>),
            quote!(Option<u32>),
            quote!(<T as Trait>::Output),
        ] {
            let out = expand_nursery(quote!(), quote!(async fn f() -> #ret { Ok(()) }));
            assert!(!out.contains("compile_error"), "{out}");
        }
        for ret in [
            quote!(()),
            quote!((u32, E)),
            quote!(&'static str),
            quote!(impl Display),
            quote!([u8; 4]),
        ] {
            let out = expand_nursery(quote!(), quote!(async fn f() -> #ret { loop {} }));
            assert!(out.contains("must return `Result<T, E>`"), "{out}");
        }
    }

    #[test]
    fn nursery_resolves_the_crate_option_at_its_string() {
        let args = NurseryArgs::parse(quote!(crate = "::re::nursery")).unwrap();
        let private = private_path(&args, Span::call_site());
        assert_eq!(
            private.to_string(),
            quote!(::re::nursery::__private).to_string()
        );
    }

    #[test]
    fn nursery_finds_the_nursery_parameter_by_its_type() {
        let nursery = |ty: TokenStream| is_nursery(&syn::parse2(ty).unwrap());
        assert!(nursery(quote!(Nursery<E>)));
        assert!(nursery(quote!(::nursery::Nursery<MyError>)));
        assert!(nursery(quote!((Nursery<E>))));
        assert!(!nursery(quote!(Nursery)));
        assert!(!nursery(quote!(&Nursery<E>)));
        assert!(!nursery(quote!(Nursery<E, F>)));
        assert!(!nursery(quote!(Option<Nursery<E>>)));
    }

    #[test]
    fn infers_impl_traits() {
        let infer = |ty: TokenStream| infer_impl_traits(ty).to_string();
        assert_eq!(
            infer(quote!(Result<u32, E>)),
            quote!(Result<u32, E>).to_string()
        );
        assert_eq!(
            infer(quote!(Result<impl Display, E>)),
            quote!(Result<_, E>).to_string()
        );
        assert_eq!(
            infer(quote!(
                Result<impl Iterator<Item = impl Fn(u8) -> Vec<u8>> + Send, E>
            )),
            quote!(Result<_, E>).to_string()
        );
        assert_eq!(
            infer(quote!(Result<(impl Display, Box<impl Debug>), impl Error>)),
            quote!(Result<(_, Box<_>), _>).to_string()
        );
        assert_eq!(
            infer(quote!(Result<&'a impl Display>)),
            quote!(Result<&'a _>).to_string()
        );
    }
}
