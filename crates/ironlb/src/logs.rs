//! Log output. The daemons write MetalLB's format when stderr is not a terminal: one JSON
//! object per line with `level`, `ts`, `caller` and `msg` beside the event's and its spans'
//! fields, keys sorted, as MetalLB's go-kit logger writes them, so log pipelines built for
//! MetalLB keep parsing. On a terminal, and for the one-shot commands, plain text.

use serde_json::{Map, Value};
use std::fmt;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// How logs are written: `IRONLB_LOG_FORMAT` (json, text), or JSON off a terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Text,
}

impl Format {
    pub fn for_daemon() -> Format {
        match std::env::var("IRONLB_LOG_FORMAT").as_deref() {
            Ok("json") => Format::Json,
            Ok("text") => Format::Text,
            _ if std::io::IsTerminal::is_terminal(&std::io::stderr()) => Format::Text,
            _ => Format::Json,
        }
    }
}

/// Starts logging to stderr under `filter`.
pub fn init(filter: tracing_subscriber::EnvFilter, format: Format) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        Format::Json => builder
            .fmt_fields(JsonFields)
            .event_format(MetalLbJson)
            .init(),
        Format::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
}

/// Fields as JSON values; tracing's `message` is MetalLB's `msg`.
#[derive(Default)]
struct Fields(Map<String, Value>);

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        let name = match field.name() {
            "message" => "msg",
            other => other,
        };
        self.0.insert(name.to_string(), value);
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, Value::String(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::String(value.to_string()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::String(value.to_string()));
    }
}

/// Span fields kept as a JSON object, so each event can carry them.
struct JsonFields;

impl<'writer> FormatFields<'writer> for JsonFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut visited = Fields::default();
        fields.record(&mut visited);
        write!(writer, "{}", Value::Object(visited.0))
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let mut visited = Fields(object(&current.fields));
        fields.record(&mut visited);
        current.fields = Value::Object(visited.0).to_string();
        Ok(())
    }
}

fn object(json: &str) -> Map<String, Value> {
    match serde_json::from_str(json) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

struct MetalLbJson;

impl<S> FormatEvent<S, JsonFields> for MetalLbJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = Fields::default();
        // Outer spans first, so an inner span's field of the same name wins.
        for span in ctx.event_scope().into_iter().flat_map(|s| s.from_root()) {
            if let Some(fields) = span.extensions().get::<FormattedFields<JsonFields>>() {
                line.0.extend(object(&fields.fields));
            }
        }
        event.record(&mut line);
        let meta = event.metadata();
        let mut ts = String::new();
        SystemTime.format_time(&mut Writer::new(&mut ts))?;
        let file = meta
            .file()
            .map_or(meta.target(), |f| f.rsplit('/').next().unwrap_or(f));
        let caller = format!("{file}:{}", meta.line().unwrap_or(0));
        let mut out = line.0;
        out.insert("level".into(), meta.level().as_str().to_lowercase().into());
        out.insert("ts".into(), ts.into());
        out.insert("caller".into(), caller.into());
        writeln!(writer, "{}", Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_line_is_metallbs_json_with_the_spans_fields() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .fmt_fields(JsonFields)
            .event_format(MetalLbJson)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("bgp_peer", peer = "gw", address = "192.0.2.1");
            let _entered = span.enter();
            tracing::warn!(hold = 90u64, "session down");
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        let line: Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(line["msg"], "session down");
        assert_eq!(line["level"], "warn");
        assert_eq!(
            (&line["peer"], &line["hold"]),
            (&Value::from("gw"), &Value::from(90))
        );
        assert!(
            line["caller"].as_str().unwrap().starts_with("logs.rs:"),
            "{line}"
        );
        assert!(line["ts"].as_str().unwrap().ends_with('Z'), "{line}");
    }
}
