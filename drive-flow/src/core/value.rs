//! Values with their type erased: what events return, as their listeners, a goto's target
//! and a run's results hold them. `()` (most events' output), `bool`, `char` and the
//! primitive numbers are held in place: no allocation, and no reference count that every
//! thread reading them writes. Copying one of those cannot be observed (none has interior
//! mutability). Any other type is shared behind one `Arc`, so that every listener sees the
//! one value its event returned (an `AtomicU64` stays one atomic).

use std::any::Any;
use std::sync::Arc;

/// A value held in place: one of a fixed few types, copied, never counted.
#[derive(Clone, Copy)]
pub(crate) enum InPlace {
    Unit,
    Bool(bool),
    Char(char),
    U8(u8),
    U16(u16),
    U32(u32),
    U64(u64),
    Usize(usize),
    I8(i8),
    I16(i16),
    I32(i32),
    I64(i64),
    Isize(isize),
    F32(f32),
    F64(f64),
}

/// Calls `$mac!` with the typed variants of [`InPlace`]: the one list [`InPlace::take`] and
/// [`InPlace::as_any`] both read.
macro_rules! in_place_types {
    ($mac:ident) => {
        $mac! {
            Bool(bool), Char(char), U8(u8), U16(u16), U32(u32), U64(u64), Usize(usize),
            I8(i8), I16(i16), I32(i32), I64(i64), Isize(isize), F32(f32), F64(f64)
        }
    };
}

impl InPlace {
    /// The value in `slot`, in place, if its type is one of the variants' (each test
    /// compares constants, and folds away once `T` is known); otherwise it stays in
    /// `slot`.
    #[inline]
    fn take<T: 'static>(slot: &mut Option<T>) -> Option<InPlace> {
        let slot: &mut dyn Any = slot;
        if let Some(unit) = slot.downcast_mut::<Option<()>>() {
            return unit.take().map(|()| InPlace::Unit);
        }
        macro_rules! take {
            ($($variant:ident($ty:ty)),*) => {
                $(
                    if let Some(value) = slot.downcast_mut::<Option<$ty>>() {
                        return value.take().map(InPlace::$variant);
                    }
                )*
            };
        }
        in_place_types!(take);
        None
    }

    /// The value, if it has type `T`: a test of the variant alone, once `T` is known (each
    /// arm's type is, so its comparison of types is of constants, and folds away; the
    /// same read through `dyn Any` calls the value's `type_id` through its vtable).
    #[inline]
    fn downcast_ref<T: 'static>(&self) -> Option<&T> {
        macro_rules! downcast_ref {
            ($($variant:ident($ty:ty)),*) => {
                match self {
                    InPlace::Unit => (&() as &dyn Any).downcast_ref::<T>(),
                    $(InPlace::$variant(value) => (value as &dyn Any).downcast_ref::<T>(),)*
                }
            };
        }
        in_place_types!(downcast_ref)
    }

    /// The value, as `dyn Any`.
    #[inline]
    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        macro_rules! as_any {
            ($($variant:ident($ty:ty)),*) => {
                match self {
                    InPlace::Unit => &(),
                    $(InPlace::$variant(value) => value,)*
                }
            };
        }
        in_place_types!(as_any)
    }
}

/// An event's outcome with its value: a value or a goto's payload, each in place or
/// shared, or an abort. One tag says both the kind and where the value is, so that an
/// outcome takes 24 bytes (a value's own 24 bytes beside a tag of the kind's would make
/// 32, and every input, result and event task that holds one larger), and an
/// [`AnyValue`] is one of these (a value), so that recording it is a move.
#[derive(Clone)]
pub(crate) enum Stored {
    Value(InPlace),
    SharedValue(Arc<dyn Any + Send + Sync>),
    Goto(InPlace),
    SharedGoto(Arc<dyn Any + Send + Sync>),
    Abort,
}

impl Stored {
    /// Its value or its goto's payload; `()` for an abort.
    #[inline]
    pub(crate) fn as_any(&self) -> &(dyn Any + Send + Sync) {
        match self {
            Stored::Value(value) | Stored::Goto(value) => value.as_any(),
            Stored::SharedValue(value) | Stored::SharedGoto(value) => &**value,
            Stored::Abort => &(),
        }
    }

    /// Its value or its goto's payload, if it has type `T` (as
    /// [`as_any`](Self::as_any)`().downcast_ref()`, without a call through a vtable for a
    /// value held in place).
    #[inline]
    pub(crate) fn downcast_ref<T: 'static>(&self) -> Option<&T> {
        match self {
            Stored::Value(value) | Stored::Goto(value) => value.downcast_ref(),
            Stored::SharedValue(value) | Stored::SharedGoto(value) => value.downcast_ref(),
            Stored::Abort => None,
        }
    }
}

/// A type-erased output value, shared by the inputs of its listeners and the run's
/// results; it derefs to `dyn Any`. Held as a [`Stored`] value (never a goto or an abort),
/// in place or shared (see the module).
#[derive(Clone)]
pub(crate) struct AnyValue(Stored);

impl AnyValue {
    /// `()`.
    pub(crate) const UNIT: AnyValue = AnyValue(Stored::Value(InPlace::Unit));

    /// The outcome it is.
    #[inline]
    pub(crate) fn into_stored(self) -> Stored {
        self.0
    }

    /// Whether it is held in place.
    #[cfg(test)]
    fn is_in_place(&self) -> bool {
        matches!(self.0, Stored::Value(_))
    }
}

impl std::ops::Deref for AnyValue {
    type Target = dyn Any + Send + Sync;

    #[inline]
    fn deref(&self) -> &Self::Target {
        self.0.as_any()
    }
}

impl From<Arc<dyn Any + Send + Sync>> for AnyValue {
    fn from(value: Arc<dyn Any + Send + Sync>) -> Self {
        AnyValue(Stored::SharedValue(value))
    }
}

/// Erase a value's type: in place if it is `()`, a `bool`, a `char` or a primitive number,
/// otherwise shared behind an `Arc`.
pub(crate) fn erase_value<T: Send + Sync + 'static>(value: T) -> AnyValue {
    let mut slot = Some(value);
    if let Some(in_place) = InPlace::take(&mut slot) {
        return AnyValue(Stored::Value(in_place));
    }
    // `take` leaves the value in `slot` whenever it returns `None`.
    slot.map_or(AnyValue::UNIT, |value| {
        AnyValue(Stored::SharedValue(Arc::new(value)))
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    use super::{erase_value, AnyValue, Stored};

    /// `value` erased is held in place, reads back as itself and as no other type.
    fn in_place<T: PartialEq + std::fmt::Debug + Send + Sync + Copy + 'static>(value: T) {
        let erased = erase_value(value);
        assert!(erased.is_in_place(), "{}", std::any::type_name::<T>());
        let copy = erased.clone();
        assert_eq!(copy.downcast_ref::<T>(), Some(&value));
        assert_eq!(erased.downcast_ref::<T>(), Some(&value));
        // The typed read (no call through a vtable) answers as `dyn Any` does.
        assert_eq!(erased.0.downcast_ref::<T>(), Some(&value));
        if std::any::TypeId::of::<T>() == std::any::TypeId::of::<u64>() {
            assert_eq!(erased.downcast_ref::<i64>(), None);
            assert_eq!(erased.0.downcast_ref::<i64>(), None);
        } else {
            assert_eq!(erased.downcast_ref::<u64>(), None);
            assert_eq!(erased.0.downcast_ref::<u64>(), None);
        }
    }

    #[test]
    fn unit_and_primitive_values_are_held_in_place_without_a_count() {
        // `()` is most events' output, and numbers and flags are common: no allocation,
        // and no reference count that every thread reading them would write.
        let unit = erase_value(());
        assert!(unit.is_in_place());
        assert_eq!(unit.downcast_ref::<()>(), Some(&()));
        assert_eq!(unit.downcast_ref::<u8>(), None);
        in_place(true);
        in_place('ß');
        in_place(7_u8);
        in_place(700_u16);
        in_place(70_000_u32);
        in_place(u64::MAX);
        in_place(usize::MAX - 1);
        in_place(-7_i8);
        in_place(-700_i16);
        in_place(-70_000_i32);
        in_place(i64::MIN);
        in_place(isize::MIN + 1);
        in_place(1.5_f32);
        in_place(-2.25_f64);
    }

    #[test]
    fn other_values_are_shared_by_every_clone() {
        let text = erase_value(String::from("shared"));
        let copy = text.clone();
        let AnyValue(Stored::SharedValue(shared)) = &text else {
            panic!("a String is shared");
        };
        assert_eq!(Arc::strong_count(shared), 2);
        assert_eq!(
            copy.downcast_ref::<String>().map(String::as_str),
            Some("shared")
        );
        assert_eq!(copy.downcast_ref::<()>(), None);
        assert_eq!(
            copy.0.downcast_ref::<String>().map(String::as_str),
            Some("shared")
        );
        assert_eq!(copy.0.downcast_ref::<()>(), None);
        assert_eq!(Stored::Abort.downcast_ref::<()>(), None);
        // A value with interior mutability is one value, whoever holds it: an atomic
        // stored through one clone is read through the other.
        let counter = erase_value(AtomicU64::new(1));
        let other = counter.clone();
        if let Some(counter) = counter.downcast_ref::<AtomicU64>() {
            counter.store(5, Ordering::Relaxed);
        }
        assert_eq!(
            other
                .downcast_ref::<AtomicU64>()
                .map(|c| c.load(Ordering::Relaxed)),
            Some(5)
        );
        // A tuple of numbers is not one of the in-place types.
        assert!(!erase_value((1_u8, 2_u8)).is_in_place());
    }
}
