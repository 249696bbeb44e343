//! Code generation: the event's zero-sized handle, its `Event` impl, and its registration.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::ItemFn;

use crate::parse::{self, AttrKind, Attrs, EventFn, Retrigger, Returns};

/// Parse, check and expand; on error, the errors beside a [`placeholder`].
pub fn entry(kind: AttrKind, args: TokenStream, item: TokenStream) -> TokenStream {
    let mut function: ItemFn = match syn::parse2(item.clone()) {
        Ok(function) => function,
        Err(_) => {
            let attr = if kind == AttrKind::Event {
                "event"
            } else {
                "listen"
            };
            let (what, location) = describe_item(&item);
            let message = format!("`#[{attr}]` goes on an `async fn`, not on {what}");
            let error = syn::Error::new_spanned(location, message).to_compile_error();
            return quote! { #error #item };
        }
    };
    match parse::parse(kind, args, &mut function) {
        Ok((attrs, event_fn)) => expand(&attrs, &event_fn),
        Err(failed) => {
            // `function` has its drive-flow attributes removed: emitted with them, they would
            // expand again and report the same errors twice.
            let error = failed.error.to_compile_error();
            let root = crate_root(failed.krate.as_ref());
            let placeholder = placeholder(function, &root);
            quote! { #error #placeholder }
        }
    }
}

/// What an item that is not a function is, for the error, and where to report it: from its
/// keyword to its name.
fn describe_item(item: &TokenStream) -> (&'static str, TokenStream) {
    let Ok(parsed) = syn::parse2::<syn::Item>(item.clone()) else {
        return ("this item", item.clone());
    };
    let span = |keyword: &dyn quote::ToTokens, name: &dyn quote::ToTokens| quote!(#keyword #name);
    match &parsed {
        syn::Item::Struct(i) => ("a struct", span(&i.struct_token, &i.ident)),
        syn::Item::Enum(i) => ("an enum", span(&i.enum_token, &i.ident)),
        syn::Item::Union(i) => ("a union", span(&i.union_token, &i.ident)),
        syn::Item::Trait(i) => ("a trait", span(&i.trait_token, &i.ident)),
        syn::Item::Impl(i) => ("an `impl` block", span(&i.impl_token, &i.self_ty)),
        syn::Item::Mod(i) => ("a module", span(&i.mod_token, &i.ident)),
        syn::Item::Const(i) => ("a constant", span(&i.const_token, &i.ident)),
        syn::Item::Static(i) => ("a static", span(&i.static_token, &i.ident)),
        syn::Item::Type(i) => ("a type alias", span(&i.type_token, &i.ident)),
        syn::Item::Use(i) => ("a `use` declaration", span(&i.use_token, &i.tree)),
        _ => ("this item", item.clone()),
    }
}

/// What stands for an event whose attributes or signature are wrong: a handle of the same
/// name that implements `Event` (so that `#[listen(it)]`, `input.get(it)`, ... elsewhere do
/// not report errors of their own), and the function, renamed, so that errors in its body are
/// still reported and IDEs still complete inside it. Nothing is registered: the crate does
/// not compile anyway.
fn placeholder(mut function: ItemFn, root: &TokenStream) -> TokenStream {
    if parse::associated_sign(&function).is_some() {
        // A method or an associated function: its impl block can hold neither a module nor
        // a free function, and the error already says why.
        return quote!(#function);
    }
    let krate = quote!(#root::__private);
    let name = function.sig.ident.clone();
    let vis = function.vis.clone();
    let (docs, other_attrs): (Vec<_>, Vec<_>) = std::mem::take(&mut function.attrs)
        .into_iter()
        .partition(|a| a.path().is_ident("doc"));
    function.attrs = other_attrs;
    function.vis = syn::Visibility::Inherited;
    function.sig.ident = format_ident!("__drive_flow_body_{}", name);
    let output = match &function.sig.output {
        _ if !function.sig.generics.params.is_empty() => quote!(()),
        syn::ReturnType::Type(_, ty) if parse::find_impl_trait(ty).is_none() => {
            output_type(&parse::classify(ty), root)
        }
        _ => quote!(()),
    };
    let handle = Handle::new(&docs, &vis, &name);
    let path = &handle.path;
    let meta = static_meta(&name, root);
    let rest = quote! {
        const _: () = {
            #[allow(dead_code, non_snake_case, clippy::all)]
            #function

            #meta

            impl #krate::Event for #path {
                type Output = #output;
                fn __key(&self) -> #krate::EventKey {
                    #krate::EventKey::Static(&__DRIVE_FLOW_META)
                }
            }
        };
    };
    handle.emit(rest, root)
}

/// The event's zero-sized handle: a unit struct named like the function, with its docs, in
/// a module of its own (`__drive_flow_<name>`), imported under the function's name.
///
/// Generated code names the struct through its module. So an event named like a `mod` of
/// the same scope is one error, at the import ("the name `x` is defined multiple times"),
/// and not one error per generated use of the name.
struct Handle {
    /// The module holding the struct.
    module: TokenStream,
    /// The import of the struct under the function's name, with the function's visibility.
    import: TokenStream,
    /// The path of the struct from the function's scope: `__drive_flow_<name>::<name>`.
    path: TokenStream,
}

impl Handle {
    fn new<D: quote::ToTokens>(docs: &[D], vis: &syn::Visibility, name: &syn::Ident) -> Self {
        let module_name = format_ident!("__drive_flow_{}", name, span = name.span());
        // Spanned at the name: "struct `a` defined here" in errors points at the function.
        let inner_vis = respan(&inner_visibility(vis), name.span());
        let handle_struct = quote_spanned! {name.span()=> #inner_vis struct #name; };
        let module = quote! {
            #[allow(non_snake_case)]
            mod #module_name {
                #(#docs)*
                #[allow(non_camel_case_types)]
                #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
                #handle_struct
            }
        };
        // At the name, with the call site's context: a clash with a `mod` of the same name is
        // reported there, without a suggestion to edit generated code.
        let import = located_at(
            quote! {
                #[allow(unused_imports)]
                #vis use #module_name::#name;
            },
            name.span(),
        );
        Handle {
            module,
            import,
            path: quote!(#module_name::#name),
        }
    }

    /// The handle, then `rest` (what the event generates beside it).
    ///
    /// `rest` and the import go in an attribute of the module, expanded only once the module
    /// is accepted: on an associated function, whose `impl` block holds no module, the user
    /// sees one error ("module is not supported in `trait`s or `impl`s", at `#[event]`),
    /// and not one for each generated item that an `impl` block cannot hold or resolve.
    fn emit(self, rest: TokenStream, root: &TokenStream) -> TokenStream {
        let Handle { module, import, .. } = self;
        quote! {
            #[#root::__private::__then(#import #rest)]
            #module
        }
    }
}

/// The visibility, inside the handle's module, that is `vis` in the function's scope.
fn inner_visibility(vis: &syn::Visibility) -> TokenStream {
    match vis {
        syn::Visibility::Public(_) => quote!(#vis),
        syn::Visibility::Inherited => quote!(pub(super)),
        syn::Visibility::Restricted(restricted) => {
            let path = &restricted.path;
            let first = path.segments.first().map(|s| s.ident.to_string());
            match first.as_deref() {
                Some("crate") if path.leading_colon.is_none() => quote!(#vis),
                Some("self") if path.segments.len() == 1 => quote!(pub(super)),
                Some("self") => {
                    let rest = path.segments.iter().skip(1);
                    quote!(pub(in super #(::#rest)*))
                }
                Some("super") => quote!(pub(in super::#path)),
                _ => quote!(#vis),
            }
        }
    }
}

/// The event's `StaticEvent`: its id (the function's full path) and where it is defined
/// (`file!()`, `line!()` and `column!()` at its name).
fn static_meta(name: &syn::Ident, root: &TokenStream) -> TokenStream {
    let krate = quote!(#root::__private);
    let site = quote_spanned! {name.span()=>
        file: ::core::file!(),
        line: ::core::line!(),
        column: ::core::column!(),
    };
    quote! {
        static __DRIVE_FLOW_META: #krate::StaticEvent = #krate::StaticEvent {
            id: ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#name)),
            #site
        };
    }
}

/// Whether a return type is a `Result` (by the last segment of its path, as `classify`).
fn is_result(ty: &syn::Type) -> bool {
    matches!(ty, syn::Type::Path(path)
        if path.path.segments.last().is_some_and(|s| s.ident == "Result"))
}

/// The `E` of a `Result<T, E>` return type, when written out (not for `io::Result<T>`).
fn result_error_type(ty: &syn::Type) -> Option<&syn::Type> {
    let syn::Type::Path(path) = ty else {
        return None;
    };
    let syn::PathArguments::AngleBracketed(args) = &path.path.segments.last()?.arguments else {
        return None;
    };
    args.args
        .iter()
        .filter_map(|arg| match arg {
            syn::GenericArgument::Type(ty) => Some(ty),
            _ => None,
        })
        .nth(1)
}

/// The `Event::Output` of a return type.
fn output_type(returns: &Returns, root: &TokenStream) -> TokenStream {
    let krate = quote!(#root::__private);
    match returns {
        Returns::Unit => quote!(()),
        Returns::Value(ty) => quote!(#ty),
        Returns::Result(ty) => quote!(<#ty as #krate::ResultOk>::Ok),
        // Through `ResultOk` first, so that an unusable error type is reported once, at the
        // error type, and not again here.
        Returns::Flow(ty) if is_result(ty) => {
            quote!(<<#ty as #krate::ResultOk>::Ok as #root::IntoFlow>::Output)
        }
        Returns::Flow(ty) => quote!(<#ty as #root::IntoFlow>::Output),
    }
}

fn expand(attrs: &Attrs, event: &EventFn) -> TokenStream {
    let root = crate_root(attrs.options.krate.as_ref());
    let krate = quote!(#root::__private);
    let item = &event.item;
    let name = &item.sig.ident;
    let vis = &item.vis;
    let (docs, other_attrs): (Vec<_>, Vec<_>) =
        item.attrs.iter().partition(|a| a.path().is_ident("doc"));

    let handle = Handle::new(&docs, vis, name);
    let path = handle.path.clone();
    let body_name = format_ident!("__drive_flow_body_{}", name);
    let mut body = item.clone();
    body.sig.ident = body_name.clone();
    body.vis = syn::Visibility::Inherited;
    body.attrs = other_attrs.into_iter().cloned().collect();

    // Locals of the generated handler, made once with one span and interpolated everywhere:
    // written out inside `quote_spanned!`, each use would take the hygiene of the span it is
    // under, and an event generated by `macro_rules!` would not find its own locals.
    let call = format_ident!("__drive_flow_call");
    let returned = format_ident!("__drive_flow_returned");
    let handler_var = format_ident!("__drive_flow_handler");

    let output = output_type(&event.returns, &root);
    // The conversion of what the function returns into the event's flow, spanned at the
    // error type of a `Result` (an error type that does not convert into a boxed error is
    // reported there), else at the return type.
    let wrap = match &event.returns {
        Returns::Unit | Returns::Value(_) => {
            quote!(::core::result::Result::Ok(#krate::Flow::Value(#returned)))
        }
        Returns::Result(ty) => {
            let span = result_error_type(ty).unwrap_or(ty).span();
            located_at(quote!(#krate::result_flow(#returned)), span)
        }
        Returns::Flow(ty) if is_result(ty) => {
            let span = result_error_type(ty).unwrap_or(ty).span();
            located_at(quote!(#krate::result_into_flow(#returned)), span)
        }
        Returns::Flow(ty) => located_at(quote!(#krate::into_flow(#returned)), ty.span()),
    };

    let param_names: Vec<_> = (0..event.params.len())
        .map(|i| format_ident!("__drive_flow_param{}", i))
        .collect();
    // The call's source, for a function of one parameter: taken from it alone (an input
    // without a call around it); the others from the call, in turn.
    let source = format_ident!("__drive_flow_source");
    let alone = event.params.len() == 1;
    let extract = event.params.iter().zip(&param_names).map(|(ty, param)| {
        let krate = respan(&krate, ty.span());
        if alone {
            quote_spanned! {ty.span()=>
                let #param = <#ty as #krate::EventParam>::from_source(#source);
            }
        } else {
            quote_spanned! {ty.span()=>
                let #param = <#ty as #krate::EventParam>::from_call(&mut #call);
            }
        }
    });
    // How many parameters take the input: the last one takes it rather than a clone.
    let inputs = event.params.iter().map(|ty| {
        let krate = respan(&krate, ty.span());
        quote_spanned! {ty.span()=> <#ty as #krate::EventParam>::INPUTS }
    });
    let needs = event.params.iter().map(|ty| {
        let krate = respan(&krate, ty.span());
        quote_spanned! {ty.span()=> <#ty as #krate::EventParam>::context_need() }
    });

    // One context type per event: each parameter against every earlier one, reported at the
    // later one.
    let one_context = event.params.iter().enumerate().flat_map(|(later, ty)| {
        let krate = respan(&krate, ty.span());
        event.params[..later].iter().map(move |earlier| {
            quote_spanned! {ty.span()=> #krate::one_context::<#ty, #earlier>(); }
        })
    });

    let groups = attrs.groups.iter().map(|group| {
        let members = group.members.iter().map(|member| {
            // Spanned at the name only, so that a non-event is reported there.
            let krate = respan(&krate, member.span());
            quote_spanned! {member.span()=> #krate::member(#member) }
        });
        let named = group.name.as_ref().map(|n| quote!(.name(#n)));
        let retrigger = group.retrigger.map(|(r, _)| match r {
            Retrigger::All => quote!(.retrigger(#krate::Retrigger::All)),
            Retrigger::Any => quote!(.retrigger(#krate::Retrigger::Any)),
        });
        quote! {
            __drive_flow_builder.listen(#path, #krate::Group::new([#(#members),*]) #named #retrigger);
        }
    });

    let options = event_options(&attrs.options, &root);
    // `runs = start`: each start spanned at its name, so that a non-event is reported there.
    let runs = attrs.options.runs.iter().map(|start| {
        let krate = respan(&krate, start.span());
        quote_spanned! {start.span()=> __drive_flow_builder.runs(#name, #krate::member(#start)); }
    });

    // Spanned at the function's name: "the other types that implement `Event`" listed in
    // errors point at the functions, and so does a future that is not `Send`.
    // The crate's path too: its tokens would otherwise keep the span they were made with.
    let krate_at_name = respan(&krate, name.span());
    // The call is made only for a function that takes two parameters or more (see
    // `CallSource`; one is taken from the source).
    let take_call = (event.params.len() > 1).then(|| {
        quote_spanned! {name.span()=>
            let mut #call = #krate_at_name::CallSource::__call(#source);
            #krate_at_name::Call::__inputs(&mut #call, 0 #(+ #inputs)*);
        }
    });
    let event_impl = quote_spanned! {name.span()=>
        impl #krate_at_name::Event for #path {
            type Output = #output;
            fn __key(&self) -> #krate_at_name::EventKey {
                #krate_at_name::EventKey::Static(&__DRIVE_FLOW_META)
            }
        }
    };
    let handler = quote_spanned! {name.span()=>
        let #handler_var = #krate_at_name::ErasedHandler::for_event(
            #path,
            |#source: #krate_at_name::CallSource<'_>| {
                #take_call
                #(#extract)*
                async move {
                    #(let #param_names = #param_names?;)*
                    let #returned = #body_name(#(#param_names),*).await;
                    ::core::result::Result::Ok::<_, #krate_at_name::ParamError>(#wrap)
                }
            },
        );
    };

    let meta = static_meta(name, &root);
    let rest = quote! {
        const _: () = {
            #[allow(non_snake_case, clippy::all)]
            #body

            #meta

            #event_impl

            // The output's JSON codec, for durable runs (nothing without that feature).
            #krate::codec!(&__DRIVE_FLOW_META, #output);

            // Its code is partly spanned at the user's function (for errors): no lints.
            #[allow(unused, clippy::all, clippy::pedantic)]
            fn __drive_flow_register(__drive_flow_builder: &mut #krate::DriveBuilder) {
                #(#one_context)*
                #handler
                __drive_flow_builder.__static_event(
                    &__DRIVE_FLOW_META,
                    ::std::vec![#(#needs),*],
                    #options,
                    #handler_var,
                );
                #(#groups)*
                #(#runs)*
            }

            #krate::inventory::submit! {
                #krate::Registration { meta: &__DRIVE_FLOW_META, register: __drive_flow_register }
            }
        };
    };
    handle.emit(rest, &root)
}

/// The event's `EventOptions`, from `timeout`, `retries` and `backoff`.
fn event_options(options: &parse::EventOpts, root: &TokenStream) -> TokenStream {
    let krate = quote!(#root::__private);
    let nanos = |n: u64| quote!(::core::time::Duration::from_nanos(#n));
    let timeout = options.timeout.map(|n| {
        let d = nanos(n);
        quote!(.timeout(#d))
    });
    let retries = options.retries.map(|n| quote!(.retries(#n)));
    let backoff = options.backoff.as_ref().map(|(n, _)| {
        let d = nanos(*n);
        quote!(.backoff(#d))
    });
    quote!(#krate::EventOptions::new() #timeout #retries #backoff)
}

/// The path of the drive-flow crate in generated code: `::drive_flow`, or the path given
/// with `crate = "..."` (for a crate that depends on drive-flow under another name, or
/// reaches it through a re-export).
fn crate_root(krate: Option<&syn::Path>) -> TokenStream {
    match krate {
        Some(path) => quote!(#path),
        None => quote!(::drive_flow),
    }
}

/// `tokens` with every span set to `span`, as if written inside `quote_spanned!(span=> ..)`.
fn respan(tokens: &TokenStream, span: proc_macro2::Span) -> TokenStream {
    tokens
        .clone()
        .into_iter()
        .map(|token| match token {
            proc_macro2::TokenTree::Group(group) => {
                let mut respanned =
                    proc_macro2::Group::new(group.delimiter(), respan(&group.stream(), span));
                respanned.set_span(span);
                proc_macro2::TokenTree::Group(respanned)
            }
            mut other => {
                other.set_span(span);
                other
            }
        })
        .collect()
}

/// Generated tokens, reported at `location` (an error about them points there) while keeping
/// the call site's hygiene, so that they still see the handler's locals even when the event
/// is generated by `macro_rules!`. Every token gets the same span, so spans join cleanly.
fn located_at(tokens: TokenStream, location: proc_macro2::Span) -> TokenStream {
    respan(&tokens, proc_macro2::Span::call_site().located_at(location))
}
