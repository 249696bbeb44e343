//! Code generation: the event's zero-sized handle, its `Event` impl, and its registration.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::ItemFn;

use crate::parse::{self, AttrKind, Attrs, EventFn, Retrigger, Returns};

/// Parse, check and expand; on error, the function unchanged beside the errors.
pub fn entry(kind: AttrKind, args: TokenStream, item: TokenStream) -> TokenStream {
    let mut function: ItemFn = match syn::parse2(item.clone()) {
        Ok(function) => function,
        Err(_) => {
            let message = format!(
                "`#[{}]` goes on an `async fn`",
                if kind == AttrKind::Event {
                    "event"
                } else {
                    "listen"
                }
            );
            let error = syn::Error::new_spanned(&item, message).to_compile_error();
            return quote! { #error #item };
        }
    };
    let original = function.clone();
    match parse::parse(kind, args, &mut function) {
        Ok((attrs, event_fn)) => expand(&attrs, &event_fn),
        Err(error) => {
            let error = error.to_compile_error();
            quote! { #error #original }
        }
    }
}

fn expand(attrs: &Attrs, event: &EventFn) -> TokenStream {
    let krate = quote!(::drive_flow::__private);
    let item = &event.item;
    let name = &item.sig.ident;
    let vis = &item.vis;
    let (docs, other_attrs): (Vec<_>, Vec<_>) =
        item.attrs.iter().partition(|a| a.path().is_ident("doc"));

    let body_name = format_ident!("__drive_flow_body_{}", name);
    let mut body = item.clone();
    body.sig.ident = body_name.clone();
    body.vis = syn::Visibility::Inherited;
    body.attrs = other_attrs.into_iter().cloned().collect();

    let output = match &event.returns {
        Returns::Unit => quote!(()),
        Returns::Value(ty) => quote!(#ty),
        Returns::Result(ty) => quote!(<#ty as #krate::ResultOk>::Ok),
        Returns::Flow(ty) => quote!(<#ty as ::drive_flow::IntoFlow>::Output),
    };
    let wrap = match &event.returns {
        Returns::Unit | Returns::Value(_) => quote!(#krate::Flow::Value(returned)),
        Returns::Result(_) => quote!(returned.map(#krate::Flow::Value)),
        Returns::Flow(_) => quote!(returned),
    };

    let param_names: Vec<_> = (0..event.params.len())
        .map(|i| format_ident!("__param{}", i))
        .collect();
    let extract = event.params.iter().zip(&param_names).map(|(ty, param)| {
        quote_spanned! {ty.span()=>
            let #param = <#ty as #krate::EventParam>::from_call(&call);
        }
    });
    let needs = event.params.iter().map(|ty| {
        quote_spanned! {ty.span()=> <#ty as #krate::EventParam>::context_need() }
    });

    let groups = attrs.groups.iter().map(|group| {
        let members = group.members.iter().map(|member| {
            quote_spanned! {member.span()=> #krate::member(#member) }
        });
        let named = group.name.as_ref().map(|n| quote!(.name(#n)));
        let retrigger = group.retrigger.map(|(r, _)| match r {
            Retrigger::All => quote!(.retrigger(#krate::Retrigger::All)),
            Retrigger::Any => quote!(.retrigger(#krate::Retrigger::Any)),
        });
        quote! {
            builder.listen(#name, #krate::Group::new([#(#members),*]) #named #retrigger);
        }
    });

    quote! {
        #(#docs)*
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
        #vis struct #name;

        const _: () = {
            #[allow(non_snake_case, clippy::all)]
            #body

            static META: #krate::StaticEvent = #krate::StaticEvent {
                id: ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#name)),
            };

            impl #krate::Event for #name {
                type Output = #output;
                fn __key(&self) -> #krate::EventKey {
                    #krate::EventKey::Static(&META)
                }
            }

            fn register(builder: &mut #krate::DriveBuilder) {
                let handler = #krate::ErasedHandler::new(|call: #krate::Call| {
                    #(#extract)*
                    async move {
                        #(let #param_names = #param_names?;)*
                        let returned = #body_name(#(#param_names),*).await;
                        ::core::result::Result::Ok::<_, #krate::ParamError>(#wrap)
                    }
                });
                builder.__static_event(
                    &META,
                    ::std::vec![#(#needs),*],
                    #krate::EventOptions::default(),
                    handler,
                );
                #(#groups)*
            }

            #krate::inventory::submit! {
                #krate::Registration { meta: &META, register }
            }
        };
    }
}
