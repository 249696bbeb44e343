//! Parsing and checking: the attributes on an event function, and the function itself.

use proc_macro2::{Span, TokenStream};
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
            AttrKind::Event => &[],
            AttrKind::Listen => &["name", "retrigger"],
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
        if input.peek(Ident) && input.peek2(Token![=]) {
            let key: Ident = input.parse()?;
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
    span: Span,
    errors: &mut Errors,
) -> Option<GroupAttr> {
    let parsed = match Punctuated::<Arg, Token![,]>::parse_terminated.parse2(args) {
        Ok(parsed) => parsed,
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
            Arg::Opt(opt) => {
                seen_option = true;
                parse_option(kind, opt, &mut group, errors);
            }
        }
    }
    if kind == AttrKind::Listen && group.members.is_empty() {
        errors.push(syn::Error::new(
            span,
            "`#[listen]` needs at least one event to listen to: `#[listen(a, b)]`",
        ));
    }
    (kind == AttrKind::Listen).then_some(group)
}

fn parse_option(kind: AttrKind, opt: Opt, group: &mut GroupAttr, errors: &mut Errors) {
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
        _ => {}
    }
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
) -> syn::Result<(Attrs, EventFn)> {
    let mut errors = Errors::default();
    // Source order: the attribute being expanded is the outermost one.
    let mut in_source_order = Vec::new();
    let first = parse_attr(kind, args, Span::call_site(), &mut errors);
    in_source_order.push((kind, first, Span::call_site()));
    let mut kept = Vec::new();
    for attr in std::mem::take(&mut item.attrs) {
        match attr_kind(&attr) {
            Some(other) => {
                let args = match &attr.meta {
                    syn::Meta::Path(_) => TokenStream::new(),
                    syn::Meta::List(list) => list.tokens.clone(),
                    syn::Meta::NameValue(nv) => {
                        errors.spanned(nv, format!("expected `#[{}(...)]`", other.name()));
                        TokenStream::new()
                    }
                };
                let group = parse_attr(other, args, attr.span(), &mut errors);
                in_source_order.push((other, group, attr.span()));
            }
            None => kept.push(attr),
        }
    }
    item.attrs = kept;
    let events: Vec<_> = in_source_order
        .iter()
        .filter(|(k, _, _)| *k == AttrKind::Event)
        .collect();
    for (_, _, span) in events.iter().skip(1) {
        errors.push(syn::Error::new(
            *span,
            "`#[event]` is set more than once on this function",
        ));
    }
    // Groups are added nearest the function first.
    let groups = in_source_order
        .into_iter()
        .rev()
        .filter_map(|(_, group, _)| group)
        .collect();
    let event_fn = check_fn(item, &mut errors);
    errors.finish()?;
    Ok((Attrs { groups }, event_fn))
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
    if let Some(variadic) = &sig.variadic {
        errors.spanned(variadic, "an event function cannot be variadic");
    }
    let mut params = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(receiver) => errors.spanned(
                receiver,
                "an event is a free function, not a method: remove `self` \
                 (parameters may be `EventInput` and `Context<T>`)",
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

/// Recognise `Result<..>` and `Flow<..>` by the last segment of their path (so aliases such
/// as `anyhow::Result<T>` and `std::io::Result<T>` count as results).
fn classify(ty: &Type) -> Returns {
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
