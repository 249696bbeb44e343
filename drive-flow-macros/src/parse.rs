//! Parsing and checking: the attributes on an event function, and the function itself.

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Attribute, Expr, FnArg, Ident, ItemFn, LitStr, Path, ReturnType, Token, Type};

/// Which attribute.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum AttrKind {
    Event,
    Listen,
}

impl AttrKind {
    fn name(self) -> &'static str {
        match self {
            AttrKind::Event => "event",
            AttrKind::Listen => "listen",
        }
    }

    /// The options this attribute accepts.
    fn options(self) -> &'static [&'static str] {
        match self {
            AttrKind::Event => &["timeout", "retries", "backoff", "runs", "crate"],
            AttrKind::Listen => &[
                "name",
                "retrigger",
                "timeout",
                "retries",
                "backoff",
                "runs",
                "crate",
            ],
        }
    }
}

/// `retrigger = all | any`.
#[derive(Clone, Copy)]
pub enum Retrigger {
    All,
    Any,
}

/// One group: the events of one `#[listen(..)]`, with its options.
pub struct GroupAttr {
    pub members: Vec<Path>,
    pub name: Option<LitStr>,
    pub retrigger: Option<(Retrigger, Span)>,
}

/// Everything the attributes on one function say.
pub struct Attrs {
    /// Groups in the order they are added: nearest the function first.
    pub groups: Vec<GroupAttr>,
    /// Options of the event itself, from any of its attributes.
    pub options: EventOpts,
}

/// `timeout = "30s"`, `retries = 3`, `backoff = "100ms"`: options of the event, not of a
/// group, so each may be set once across all the attributes of the function.
#[derive(Default)]
pub struct EventOpts {
    /// In nanoseconds.
    pub timeout: Option<u64>,
    pub retries: Option<u32>,
    /// In nanoseconds, with the key (to report `backoff` without `retries`).
    pub backoff: Option<(u64, Ident)>,
    /// `crate = "path"`: where generated code finds drive-flow, if not at `::drive_flow`.
    pub krate: Option<Path>,
    /// `runs = start`: the child workflows the event runs (for the pictures), in order.
    pub runs: Vec<Path>,
}

/// The parsed function.
pub struct EventFn {
    pub item: ItemFn,
    pub params: Vec<Type>,
    pub returns: Returns,
}

/// How the return type maps to a flow.
pub enum Returns {
    /// No return type.
    Unit,
    /// A plain `T`.
    Value(Type),
    /// `Result<T, E>`.
    Result(Type),
    /// `Flow<T>` or `Result<Flow<T>, E>`.
    Flow(Type),
}

/// Collects every error, to report them all at once.
#[derive(Default)]
pub struct Errors(Option<syn::Error>);

impl Errors {
    pub fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(existing) => existing.combine(error),
            None => self.0 = Some(error),
        }
    }

    pub fn spanned(&mut self, tokens: impl quote::ToTokens, message: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    pub fn finish(self) -> Result<(), syn::Error> {
        self.0.map_or(Ok(()), Err)
    }
}

/// One `key = value` option.
struct Opt {
    key: Ident,
    value: Expr,
}

/// The contents of one attribute: members (for `listen`) then options.
enum Arg {
    Member(Path),
    Opt(Opt),
}

impl Parse for Arg {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        // `crate` is a keyword, not an identifier: accepted as a key all the same.
        if (input.peek(Ident) || input.peek(Token![crate])) && input.peek2(Token![=]) {
            let key = Ident::parse_any(input)?;
            input.parse::<Token![=]>()?;
            let value: Expr = input.parse()?;
            return Ok(Arg::Opt(Opt { key, value }));
        }
        let path = input.parse::<Path>().map_err(|error| {
            syn::Error::new(
                error.span(),
                "expected an event name or an option such as `name = \"...\"`",
            )
        })?;
        Ok(Arg::Member(path))
    }
}

/// Parse one attribute's arguments into a group (for `listen`) or nothing (for `event`).
fn parse_attr(
    kind: AttrKind,
    args: TokenStream,
    attr: &TokenStream,
    options: &mut EventOpts,
    errors: &mut Errors,
) -> Option<GroupAttr> {
    let parsed = match Punctuated::<Arg, Token![,]>::parse_terminated.parse2(args) {
        Ok(parsed) => parsed,
        Err(error) if error.to_string() == "expected `,`" => {
            let message = match kind {
                AttrKind::Event => {
                    "expected `,`: separate options with commas, as in \
                     `#[event(timeout = \"30s\", retries = 3)]`"
                }
                AttrKind::Listen => {
                    "expected `,`: separate event names and options with commas, as in \
                     `#[listen(a, b, name = \"x\")]`"
                }
            };
            errors.push(syn::Error::new(error.span(), message));
            return None;
        }
        Err(error) => {
            errors.push(error);
            return None;
        }
    };
    let mut group = GroupAttr {
        members: Vec::new(),
        name: None,
        retrigger: None,
    };
    let mut seen_option = false;
    for arg in parsed {
        match arg {
            Arg::Member(path) if kind == AttrKind::Event => errors.spanned(
                path,
                "`#[event]` takes no event names: it makes an event that listens to nothing; \
                 use `#[listen(a, b)]` to listen to events",
            ),
            Arg::Member(path) if seen_option => errors.spanned(
                path,
                "event names come before options: `#[listen(a, b, name = \"...\")]`",
            ),
            Arg::Member(path) => group.members.push(path),
            Arg::Opt(opt) if kind == AttrKind::Event && is_group_option(&opt.key) => {
                errors.spanned(&opt.key, group_option_on_event(&opt.key));
            }
            Arg::Opt(opt) => {
                seen_option = true;
                parse_option(kind, opt, &mut group, options, errors);
            }
        }
    }
    if kind == AttrKind::Listen && group.members.is_empty() {
        errors.spanned(
            attr,
            "`#[listen]` needs at least one event to listen to: `#[listen(a, b)]`",
        );
    }
    (kind == AttrKind::Listen).then_some(group)
}

/// `name` and `retrigger` describe a `#[listen(..)]` group; `#[event]` has none.
fn is_group_option(key: &Ident) -> bool {
    key == "name" || key == "retrigger"
}

fn group_option_on_event(key: &Ident) -> String {
    if key == "name" {
        "`name` names a `#[listen(..)]` group, not the event: an event is named by its \
         function; `#[event]` has no group to name"
            .to_string()
    } else {
        format!(
            "`{key}` is an option of a `#[listen(..)]` group; `#[event]` listens to nothing, \
             so it has no group"
        )
    }
}

fn parse_option(
    kind: AttrKind,
    opt: Opt,
    group: &mut GroupAttr,
    options: &mut EventOpts,
    errors: &mut Errors,
) {
    let key = opt.key.to_string();
    if !kind.options().contains(&key.as_str()) {
        let expected = kind
            .options()
            .iter()
            .map(|o| format!("`{o}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let message = if expected.is_empty() {
            format!(
                "unknown option `{key}`: `#[{}]` takes no options",
                kind.name()
            )
        } else {
            format!("unknown option `{key}`; expected one of: {expected}")
        };
        errors.spanned(&opt.key, message);
        return;
    }
    let twice =
        |errors: &mut Errors| errors.spanned(&opt.key, format!("`{key}` is set more than once"));
    let twice_event = |errors: &mut Errors| {
        errors.spanned(
            &opt.key,
            format!(
                "`{key}` is set more than once: `timeout`, `retries` and `backoff` are options \
                 of the event, not of one group; set each once, on any of its attributes"
            ),
        )
    };
    match key.as_str() {
        "name" => match &opt.value {
            Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(name),
                ..
            }) if group.name.is_none() => group.name = Some(name.clone()),
            Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(_),
                ..
            }) => twice(errors),
            other => errors.spanned(other, "expected a string: `name = \"...\"`"),
        },
        "retrigger" => {
            let value = match &opt.value {
                Expr::Path(path) if path.path.is_ident("all") => Some(Retrigger::All),
                Expr::Path(path) if path.path.is_ident("any") => Some(Retrigger::Any),
                _ => None,
            };
            match value {
                Some(_) if group.retrigger.is_some() => twice(errors),
                Some(value) => group.retrigger = Some((value, opt.value.span())),
                None => errors.spanned(
                    &opt.value,
                    "expected `all` or `any`: `retrigger = all` or `retrigger = any`",
                ),
            }
        }
        "timeout" => {
            if let Some(nanos) = parse_duration(&opt.value, "timeout", errors) {
                if nanos == 0 {
                    errors.spanned(
                        &opt.value,
                        "a timeout of zero would fail every attempt; give a positive \
                         duration such as `timeout = \"30s\"`",
                    );
                } else if options.timeout.replace(nanos).is_some() {
                    twice_event(errors);
                }
            }
        }
        "retries" => {
            let retries = match &opt.value {
                Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Int(int),
                    ..
                }) if int.suffix().is_empty() || int.suffix() == "u32" => {
                    int.base10_parse::<u32>().ok()
                }
                _ => None,
            };
            match retries {
                Some(retries) if options.retries.replace(retries).is_some() => twice_event(errors),
                Some(_) => {}
                None => errors.spanned(
                    &opt.value,
                    "expected a number of retries: a non-negative integer such as \
                     `retries = 3`",
                ),
            }
        }
        "runs" => match &opt.value {
            Expr::Path(path) if path.qself.is_none() => options.runs.push(path.path.clone()),
            other => errors.spanned(
                other,
                "expected the start event of the child workflow the event runs: \
                 `runs = research`",
            ),
        },
        "crate" => {
            let path = match &opt.value {
                Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(text),
                    ..
                }) => text.parse::<Path>().ok(),
                _ => None,
            };
            match path {
                Some(_) if options.krate.is_some() => twice(errors),
                Some(path) => options.krate = Some(path),
                None => errors.spanned(
                    &opt.value,
                    "expected the path of the drive-flow crate, as a string: \
                     `crate = \"my_drive_flow\"` (for a dependency renamed to `my_drive_flow`) or \
                     `crate = \"my_crate::drive_flow\"` (for a re-export)",
                ),
            }
        }
        "backoff" => {
            if let Some(nanos) = parse_duration(&opt.value, "backoff", errors) {
                if options.backoff.replace((nanos, opt.key.clone())).is_some() {
                    twice_event(errors);
                }
            }
        }
        _ => {}
    }
}

/// A duration option, `"500ms"`, `"30s"`, `"2m"` or `"1h"`, in nanoseconds; on error, an
/// error at the value naming the accepted forms.
fn parse_duration(value: &Expr, key: &str, errors: &mut Errors) -> Option<u64> {
    let expected = format!(
        "expected a duration: a string such as `{key} = \"500ms\"`, `\"30s\"` or `\"2m\"` \
         (a whole number, then `ms`, `s`, `m` or `h`)"
    );
    let Expr::Lit(syn::ExprLit {
        lit: syn::Lit::Str(text),
        ..
    }) = value
    else {
        errors.spanned(value, expected);
        return None;
    };
    let text = text.value();
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit: u64 = match &text[digits.len()..] {
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => {
            errors.spanned(value, expected);
            return None;
        }
    };
    let nanos = match digits.parse::<u64>() {
        Ok(number) if !digits.starts_with('+') => number.checked_mul(unit),
        _ => {
            errors.spanned(value, expected);
            return None;
        }
    };
    if nanos.is_none() {
        errors.spanned(
            value,
            format!("`{key}` is too long: keep it under 500 years"),
        );
    }
    nanos
}

/// Which drive-flow attribute an attribute of the function is, if any.
fn attr_kind(attr: &Attribute) -> Option<AttrKind> {
    let last = attr.path().segments.last()?.ident.to_string();
    let qualified = attr.path().segments.len() == 1
        || attr
            .path()
            .segments
            .first()
            .is_some_and(|s| s.ident == "drive_flow");
    match last.as_str() {
        "event" if qualified => Some(AttrKind::Event),
        "listen" if qualified => Some(AttrKind::Listen),
        _ => None,
    }
}

/// Parse the attribute being expanded, every other drive-flow attribute on the function
/// (removing them), and the function.
pub fn parse(
    kind: AttrKind,
    args: TokenStream,
    item: &mut ItemFn,
) -> Result<(Attrs, EventFn), Failed> {
    let mut errors = Errors::default();
    // Source order: the attribute being expanded is the outermost one.
    // Where to report an attribute-level error: the whole attribute (nothing = the
    // attribute being expanded, which is the call site).
    let mut in_source_order = Vec::new();
    let mut options = EventOpts::default();
    let first = parse_attr(kind, args, &TokenStream::new(), &mut options, &mut errors);
    in_source_order.push((kind, first, TokenStream::new()));
    let mut kept = Vec::new();
    for attr in std::mem::take(&mut item.attrs) {
        match attr_kind(&attr) {
            Some(other) => {
                let location = attr.to_token_stream();
                let args = match &attr.meta {
                    syn::Meta::Path(_) => TokenStream::new(),
                    syn::Meta::List(list) => list.tokens.clone(),
                    syn::Meta::NameValue(nv) => {
                        errors.spanned(nv, format!("expected `#[{}(...)]`", other.name()));
                        in_source_order.push((other, None, location));
                        continue;
                    }
                };
                let group = parse_attr(other, args, &location, &mut options, &mut errors);
                in_source_order.push((other, group, location));
            }
            None => kept.push(attr),
        }
    }
    item.attrs = kept;
    let events: Vec<_> = in_source_order
        .iter()
        .filter(|(k, _, _)| *k == AttrKind::Event)
        .collect();
    for (_, _, location) in events.iter().skip(1) {
        errors.spanned(
            location,
            "`#[event]` is set more than once on this function",
        );
    }
    // Groups are added nearest the function first.
    let groups = in_source_order
        .into_iter()
        .rev()
        .filter_map(|(_, group, _)| group)
        .collect();
    let event_fn = check_fn(item, &mut errors);
    if let (Some((_, key)), None) = (&options.backoff, options.retries) {
        errors.spanned(
            key,
            "`backoff` is the wait between retries: set `retries = n` too",
        );
    }
    match errors.finish() {
        Ok(()) => Ok((Attrs { groups, options }, event_fn)),
        Err(error) => Err(Failed {
            error,
            krate: options.krate,
        }),
    }
}

/// Why an event cannot be generated, and where the drive-flow crate is if the attributes
/// said it (for the placeholder emitted beside the errors).
pub struct Failed {
    pub error: syn::Error,
    pub krate: Option<Path>,
}

fn check_fn(item: &ItemFn, errors: &mut Errors) -> EventFn {
    let sig = &item.sig;
    if sig.asyncness.is_none() {
        errors.spanned(
            sig.fn_token,
            "an event must be an `async fn`: write `async fn` here",
        );
    }
    if !sig.generics.params.is_empty() {
        errors.spanned(
            &sig.generics,
            "an event function cannot be generic: each event is one concrete function",
        );
    }
    if let Some(where_clause) = &sig.generics.where_clause {
        errors.spanned(
            where_clause,
            "an event function cannot have a `where` clause",
        );
    }
    if let Some(constness) = &sig.constness {
        errors.spanned(constness, "an event function cannot be `const`");
    }
    if let Some(unsafety) = &sig.unsafety {
        errors.spanned(
            unsafety,
            "an event function cannot be `unsafe`: the runtime calls it like any other; \
             make it safe and put `unsafe {}` blocks inside",
        );
    }
    if let Some(abi) = &sig.abi {
        errors.spanned(abi, "an event function cannot be `extern`");
    }
    if let ReturnType::Type(_, ty) = &sig.output {
        if let Some(impl_trait) = find_impl_trait(ty) {
            errors.spanned(
                impl_trait,
                "an event cannot return `impl Trait`: listeners read its output by type; \
                 return a concrete type (or a `Box<dyn Trait + Send + Sync>`)",
            );
        }
    }
    if let Some(variadic) = &sig.variadic {
        errors.spanned(variadic, "an event function cannot be variadic");
    }
    if let Some(AssociatedSign::SelfType(span)) = associated_sign(item) {
        errors.push(syn::Error::new(
            span,
            "an event cannot use `Self`: it is a free function, not an associated function \
             of an `impl` block; move it out of the `impl` and name the type",
        ));
    }
    let mut params = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(receiver) => errors.spanned(
                receiver,
                "an event is a free function, not a method: remove `self` \
                 (its parameters may be `EventInput`, `Context<T>`, `Inbox`, `Emitter<T>` \
                 and `Child`)",
            ),
            FnArg::Typed(typed) => params.push((*typed.ty).clone()),
        }
    }
    let returns = match &sig.output {
        ReturnType::Default => Returns::Unit,
        ReturnType::Type(_, ty) => classify(ty),
    };
    EventFn {
        item: item.clone(),
        params,
        returns,
    }
}

/// A sign that the function is a method or an associated function of an `impl` block
/// (which the macro cannot see): a `self` parameter, or `Self`.
pub enum AssociatedSign {
    Receiver,
    /// `Self` in the signature, or in the body outside the items nested in it.
    SelfType(Span),
}

pub fn associated_sign(item: &ItemFn) -> Option<AssociatedSign> {
    if item
        .sig
        .inputs
        .iter()
        .any(|input| matches!(input, FnArg::Receiver(_)))
    {
        return Some(AssociatedSign::Receiver);
    }
    find_self(item.sig.to_token_stream(), false)
        .or_else(|| find_self(item.block.to_token_stream(), true))
        .map(AssociatedSign::SelfType)
}

/// The first `Self` in `tokens`; with `skip_items`, not inside an `impl`, `trait`, `struct`,
/// `enum` or `union` nested in a body, where `Self` is that item's own.
fn find_self(tokens: TokenStream, skip_items: bool) -> Option<Span> {
    use proc_macro2::{Delimiter, TokenTree};
    let mut tokens = tokens.into_iter();
    while let Some(token) = tokens.next() {
        match token {
            TokenTree::Ident(ident) if ident == "Self" => return Some(ident.span()),
            TokenTree::Ident(ident)
                if skip_items
                    && ["impl", "trait", "struct", "enum", "union"]
                        .iter()
                        .any(|keyword| ident == keyword) =>
            {
                // To the end of the item: its body, or the `;` of a unit or tuple struct.
                for token in tokens.by_ref() {
                    match token {
                        TokenTree::Group(group) if group.delimiter() == Delimiter::Brace => break,
                        TokenTree::Punct(punct) if punct.as_char() == ';' => break,
                        _ => {}
                    }
                }
            }
            TokenTree::Group(group) => {
                if let Some(span) = find_self(group.stream(), skip_items) {
                    return Some(span);
                }
            }
            _ => {}
        }
    }
    None
}

/// The first `impl Trait` inside a return type, if any.
pub fn find_impl_trait(ty: &Type) -> Option<&Type> {
    match ty {
        Type::ImplTrait(_) => Some(ty),
        Type::Path(path) => path.path.segments.iter().find_map(|segment| {
            let syn::PathArguments::AngleBracketed(args) = &segment.arguments else {
                return None;
            };
            args.args.iter().find_map(|arg| match arg {
                syn::GenericArgument::Type(ty) => find_impl_trait(ty),
                _ => None,
            })
        }),
        Type::Tuple(tuple) => tuple.elems.iter().find_map(find_impl_trait),
        Type::Array(array) => find_impl_trait(&array.elem),
        Type::Slice(slice) => find_impl_trait(&slice.elem),
        Type::Reference(reference) => find_impl_trait(&reference.elem),
        Type::Paren(paren) => find_impl_trait(&paren.elem),
        Type::Group(group) => find_impl_trait(&group.elem),
        _ => None,
    }
}

/// Recognise `Result<..>` and `Flow<..>` by the last segment of their path (so aliases such
/// as `anyhow::Result<T>` and `std::io::Result<T>` count as results).
pub fn classify(ty: &Type) -> Returns {
    match last_segment(ty) {
        Some(("Flow", _)) => Returns::Flow(ty.clone()),
        Some(("Result", Some(ok))) if matches!(last_segment(ok), Some(("Flow", _))) => {
            Returns::Flow(ty.clone())
        }
        Some(("Result", _)) => Returns::Result(ty.clone()),
        _ => Returns::Value(ty.clone()),
    }
}

fn last_segment(ty: &Type) -> Option<(&'static str, Option<&Type>)> {
    let Type::Path(path) = ty else { return None };
    let segment = path.path.segments.last()?;
    let name = if segment.ident == "Result" {
        "Result"
    } else if segment.ident == "Flow" {
        "Flow"
    } else {
        return None;
    };
    let first_arg = match &segment.arguments {
        syn::PathArguments::AngleBracketed(args) => args.args.iter().find_map(|arg| match arg {
            syn::GenericArgument::Type(ty) => Some(ty),
            _ => None,
        }),
        _ => None,
    };
    Some((name, first_arg))
}

#[cfg(test)]
mod duration_tests {
    use super::{parse_duration, Errors};

    fn parse(value: &str) -> Option<u64> {
        let expr: syn::Expr = syn::parse_str(value).unwrap();
        let mut errors = Errors::default();
        let parsed = parse_duration(&expr, "timeout", &mut errors);
        assert_eq!(parsed.is_none(), errors.finish().is_err(), "{value}");
        parsed
    }

    #[test]
    fn every_unit_is_read_in_nanoseconds() {
        assert_eq!(parse(r#""500ms""#), Some(500_000_000));
        assert_eq!(parse(r#""30s""#), Some(30_000_000_000));
        assert_eq!(parse(r#""2m""#), Some(120_000_000_000));
        assert_eq!(parse(r#""1h""#), Some(3_600_000_000_000));
        assert_eq!(parse(r#""0ms""#), Some(0));
    }

    #[test]
    fn anything_else_is_an_error() {
        for bad in [
            r#""soon""#,
            r#""1.5s""#,
            r#""30""#,
            r#""s""#,
            r#""-1s""#,
            r#""+1s""#,
            r#""1 s""#,
            r#""1d""#,
            "30",
            "x",
            r#""99999999999h""#,
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
