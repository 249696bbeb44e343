//! The trace context of durable runs: a W3C trace-context `traceparent`
//! (`00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`) stored with each run and each
//! queued task, so that the span of an event run on any worker is a child of the span that
//! queued it (the span around `submit()`, or the event run that triggered it).
//!
//! The format is parsed and written here by hand (it is fixed). Reading and setting the
//! OpenTelemetry context of a `tracing` span needs the cargo feature `opentelemetry`
//! (through `tracing-opentelemetry`); without it, [`current`] and [`of_span`] give `None`
//! (the column is written NULL) and [`set_parent`] does nothing.

use std::fmt;

/// A parsed `traceparent` of version `00`. (Without the feature `opentelemetry` only its
/// tests use it.)
#[cfg_attr(not(feature = "opentelemetry"), allow(dead_code))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TraceParent {
    pub(crate) trace_id: [u8; 16],
    pub(crate) span_id: [u8; 8],
    pub(crate) flags: u8,
}

#[cfg_attr(not(feature = "opentelemetry"), allow(dead_code))]
impl TraceParent {
    /// Parse a `traceparent` of version `00`: lowercase hex, a trace id and a span id that
    /// are not all zeros. `None` for anything else.
    pub(crate) fn parse(text: &str) -> Option<TraceParent> {
        let bytes = text.as_bytes();
        if bytes.len() != 55
            || &bytes[0..2] != b"00"
            || bytes[2] != b'-'
            || bytes[35] != b'-'
            || bytes[52] != b'-'
        {
            return None;
        }
        let mut parsed = TraceParent {
            trace_id: [0; 16],
            span_id: [0; 8],
            flags: 0,
        };
        hex_into(&bytes[3..35], &mut parsed.trace_id)?;
        hex_into(&bytes[36..52], &mut parsed.span_id)?;
        let mut flags = [0u8; 1];
        hex_into(&bytes[53..55], &mut flags)?;
        parsed.flags = flags[0];
        if parsed.trace_id == [0; 16] || parsed.span_id == [0; 8] {
            return None;
        }
        Some(parsed)
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("00-")?;
        for byte in self.trace_id {
            write!(f, "{byte:02x}")?;
        }
        f.write_str("-")?;
        for byte in self.span_id {
            write!(f, "{byte:02x}")?;
        }
        write!(f, "-{:02x}", self.flags)
    }
}

#[cfg_attr(not(feature = "opentelemetry"), allow(dead_code))]
/// Decode lowercase hex digits into `out` (exactly twice as many digits as bytes).
fn hex_into(digits: &[u8], out: &mut [u8]) -> Option<()> {
    if digits.len() != out.len() * 2 {
        return None;
    }
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(())
}

#[cfg_attr(not(feature = "opentelemetry"), allow(dead_code))]
fn nibble(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

#[cfg(feature = "opentelemetry")]
mod otel {
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    };
    use tracing_opentelemetry::{OpenTelemetrySpanExt, SetParentError};

    use super::TraceParent;

    fn of_context(context: &opentelemetry::Context) -> Option<String> {
        let span = context.span();
        let span_context = span.span_context();
        span_context.is_valid().then(|| {
            TraceParent {
                trace_id: span_context.trace_id().to_bytes(),
                span_id: span_context.span_id().to_bytes(),
                flags: span_context.trace_flags().to_u8(),
            }
            .to_string()
        })
    }

    /// The `traceparent` of the current span (the one around `submit()`), or of
    /// OpenTelemetry's current context when no `tracing` span has one.
    pub(crate) fn current() -> Option<String> {
        of_span(&tracing::Span::current())
            .or_else(|| of_context(&opentelemetry::Context::current()))
    }

    /// The `traceparent` of `span`, when it has a valid OpenTelemetry span context.
    pub(crate) fn of_span(span: &tracing::Span) -> Option<String> {
        if span.is_disabled() {
            return None;
        }
        of_context(&span.context())
    }

    /// Make the remote span `traceparent` names the parent of `span` (not entered yet). A
    /// malformed value is ignored (logged at debug level).
    pub(crate) fn set_parent(span: &tracing::Span, traceparent: Option<&str>) {
        let Some(text) = traceparent else {
            return;
        };
        if span.is_disabled() {
            return;
        }
        let Some(parent) = TraceParent::parse(text) else {
            tracing::debug!(traceparent = %text, "a task's traceparent is malformed; ignored");
            return;
        };
        let remote = SpanContext::new(
            TraceId::from_bytes(parent.trace_id),
            SpanId::from_bytes(parent.span_id),
            TraceFlags::new(parent.flags),
            true,
            TraceState::NONE,
        );
        match span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote)) {
            // No OpenTelemetry layer in this process: nothing to join.
            Ok(()) | Err(SetParentError::LayerNotFound) => {}
            Err(error) => tracing::debug!(%error, "could not set the parent of an event's span"),
        }
    }
}

#[cfg(feature = "opentelemetry")]
pub(crate) use otel::{current, of_span, set_parent};

/// The `traceparent` of the current span: none without the feature `opentelemetry`.
#[cfg(not(feature = "opentelemetry"))]
pub(crate) fn current() -> Option<String> {
    None
}

/// The `traceparent` of `span`: none without the feature `opentelemetry`.
#[cfg(not(feature = "opentelemetry"))]
pub(crate) fn of_span(_: &tracing::Span) -> Option<String> {
    None
}

/// Set the parent of `span`: nothing without the feature `opentelemetry`.
#[cfg(not(feature = "opentelemetry"))]
pub(crate) fn set_parent(_: &tracing::Span, _: Option<&str>) {}

#[cfg(test)]
mod tests {
    use super::TraceParent;

    const SAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_traceparent_round_trips() {
        let parsed = TraceParent::parse(SAMPLE).expect("the W3C example");
        assert_eq!(
            parsed.trace_id,
            [
                0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e,
                0x47, 0x36
            ]
        );
        assert_eq!(
            parsed.span_id,
            [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]
        );
        assert_eq!(parsed.flags, 1);
        assert_eq!(parsed.to_string(), SAMPLE);
        let unsampled = TraceParent {
            trace_id: [0xff; 16],
            span_id: [1; 8],
            flags: 0,
        };
        assert_eq!(
            unsampled.to_string(),
            "00-ffffffffffffffffffffffffffffffff-0101010101010101-00"
        );
        assert_eq!(TraceParent::parse(&unsampled.to_string()), Some(unsampled));
    }

    #[test]
    fn malformed_traceparents_are_refused() {
        for bad in [
            "",
            "00",
            "garbage",
            // Zero trace id, zero span id.
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            // Another version, uppercase hex, non-hex digits, wrong separators.
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
            // Too short, too long, a field one digit off.
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
            "00-4bf92f3577b34da6a3ce929d0e0e47360-0f067aa0ba902b7-01",
            // Multi-byte characters where digits should be (55 bytes, not 55 chars).
            "00-4bf92f3577b34da6a3ce929d0e0e47é-00f067aa0ba902b7-01",
            " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad:?}");
        }
    }
}
