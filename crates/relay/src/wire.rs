//! The JSON forms of HashMail's messages, as grpc-gateway maps them (protojson with proto
//! field names, bytes in base64), and the message payload type.
//!
//! Parsing goes through [`serde_json::Value`] and checks each field by hand, so that every
//! error names the field and what was expected, and no error message (or log line) quotes the
//! input: a bad request may carry message bytes.

use std::fmt;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use serde_json::{json, Map, Value};

use crate::status::{Reason, Status, ERROR_DOMAIN};
use crate::stream_id::StreamId;

/// The bytes of one mailbox message. Its `Debug` shows the length only, never the bytes.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Payload(Vec<u8>);

impl Payload {
    /// Wraps message bytes.
    pub fn new(bytes: Vec<u8>) -> Payload {
        Payload(bytes)
    }

    /// The length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The bytes, unwrapped.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Payload({} bytes)", self.0.len())
    }
}

/// protojson accepts standard and URL-safe base64, with or without padding.
const LENIENT_STANDARD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
const LENIENT_URL_SAFE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Decodes a protojson `bytes` value.
pub(crate) fn decode_base64(text: &str) -> Option<Vec<u8>> {
    if text.contains(['-', '_']) {
        LENIENT_URL_SAFE.decode(text).ok()
    } else {
        LENIENT_STANDARD.decode(text).ok()
    }
}

/// Encodes a `bytes` value as protojson does (standard alphabet, padded).
pub(crate) fn encode_base64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Parses a JSON request without quoting it in the error.
pub(crate) fn parse_json(text: &str) -> Result<Value, Status> {
    serde_json::from_str(text).map_err(|e| {
        Status::invalid(format!(
            "the request is not valid JSON (line {}, column {})",
            e.line(),
            e.column()
        ))
    })
}

fn as_object<'a>(value: &'a Value, what: &str) -> Result<&'a Map<String, Value>, Status> {
    value
        .as_object()
        .ok_or_else(|| Status::invalid(format!("{what} must be a JSON object")))
}

/// A field by its proto name or its lowerCamelCase JSON name; `null` counts as absent.
fn field<'a>(object: &'a Map<String, Value>, proto: &str, camel: &str) -> Option<&'a Value> {
    object
        .get(proto)
        .or_else(|| object.get(camel))
        .filter(|v| !v.is_null())
}

fn bytes_field(
    object: &Map<String, Value>,
    proto: &str,
    camel: &str,
    path: &str,
) -> Result<Option<Vec<u8>>, Status> {
    let Some(value) = field(object, proto, camel) else {
        return Ok(None);
    };
    let text = value
        .as_str()
        .ok_or_else(|| Status::invalid(format!("{path} must be a base64 string")))?;
    decode_base64(text)
        .map(Some)
        .ok_or_else(|| Status::invalid(format!("{path} is not valid base64")))
}

/// A `CipherBoxDesc` object: its `stream_id`, which must be there and be 64 bytes.
fn desc(value: &Value, path: &str) -> Result<StreamId, Status> {
    let object = as_object(value, path)?;
    let field_path = if path.is_empty() {
        "stream_id".to_string()
    } else {
        format!("{path}.stream_id")
    };
    let bytes = bytes_field(object, "stream_id", "streamId", &field_path)?
        .ok_or_else(|| Status::invalid(format!("{field_path} is required")))?;
    if bytes.len() != StreamId::LEN {
        return Err(Status::invalid(format!(
            "{field_path} must be {} bytes, not {}",
            StreamId::LEN,
            bytes.len()
        )));
    }
    StreamId::from_slice(&bytes).map_err(|_| Status::invalid("stream id"))
}

/// A `CipherBoxAuth` (create and delete): `{"desc": {"stream_id": ..}, "lnd_auth": {}}`.
/// `lnd_auth` may be left out (the relay authenticates nobody), but must be an object if
/// present.
pub(crate) fn parse_box_auth(text: &str) -> Result<StreamId, Status> {
    let value = parse_json(text)?;
    let object = as_object(&value, "the request")?;
    if let Some(auth) = field(object, "lnd_auth", "lndAuth") {
        as_object(auth, "lnd_auth")?;
    }
    let desc_value =
        field(object, "desc", "desc").ok_or_else(|| Status::invalid("desc is required"))?;
    desc(desc_value, "desc")
}

/// A `CipherBoxDesc` (the receive call's request): `{"stream_id": ..}`.
pub(crate) fn parse_box_desc(text: &str) -> Result<StreamId, Status> {
    desc(&parse_json(text)?, "")
}

/// A `CipherBox` (one send frame): `{"desc": {"stream_id": ..}, "msg": ..}`. `desc` may be
/// left out after the first frame; `msg` may be left out for an empty message.
pub(crate) fn parse_cipher_box(text: &str) -> Result<(Option<StreamId>, Payload), Status> {
    let value = parse_json(text)?;
    let object = as_object(&value, "the request")?;
    let id = match field(object, "desc", "desc") {
        Some(value) => Some(desc(value, "desc")?),
        None => None,
    };
    let msg = bytes_field(object, "msg", "msg", "msg")?.unwrap_or_default();
    Ok((id, Payload::new(msg)))
}

/// A `CipherBoxAuth` as a client sends it.
pub(crate) fn encode_box_auth(id: &StreamId) -> String {
    json!({"desc": {"stream_id": encode_base64(id.as_bytes())}, "lnd_auth": {}}).to_string()
}

/// A `CipherBoxDesc` as a client sends it.
pub(crate) fn encode_box_desc(id: &StreamId) -> String {
    json!({"stream_id": encode_base64(id.as_bytes())}).to_string()
}

/// A `CipherBox` as a client sends it.
pub(crate) fn encode_cipher_box(id: &StreamId, msg: &[u8]) -> String {
    json!({
        "desc": {"stream_id": encode_base64(id.as_bytes())},
        "msg": encode_base64(msg),
    })
    .to_string()
}

/// A receive stream's result frame: `{"result": {"desc": {..}, "msg": ..}}`.
pub(crate) fn encode_result(id_b64: &str, msg: &Payload) -> String {
    json!({"result": {"desc": {"stream_id": id_b64}, "msg": encode_base64(msg.as_bytes())}})
        .to_string()
}

fn status_value(status: &Status) -> Value {
    let details = match status.reason {
        Some(reason) => json!([{
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": reason.as_str(),
            "domain": ERROR_DOMAIN,
        }]),
        None => json!([]),
    };
    json!({"code": status.code, "message": status.message, "details": details})
}

/// An error as a unary HTTP response body: `{"code", "message", "details"}`.
pub(crate) fn encode_status(status: &Status) -> String {
    status_value(status).to_string()
}

/// An error as a websocket frame: `{"error": {"code", "message", "details"}}`.
pub(crate) fn encode_error_frame(status: &Status) -> String {
    json!({"error": status_value(status)}).to_string()
}

/// Reads a status object (`{"code", "message", "details"}`), as our relay or aperture sends
/// it. `None` if `value` does not look like one.
pub(crate) fn decode_status(value: &Value) -> Option<Status> {
    let object = value.as_object()?;
    let code = object.get("code")?.as_i64()?;
    let message = object
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .chars()
        .take(512)
        .collect();
    let reason = object
        .get("details")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|d| d.get("domain").and_then(Value::as_str) == Some(ERROR_DOMAIN))
        .find_map(|d| {
            d.get("reason")
                .and_then(Value::as_str)
                .and_then(Reason::from_wire)
        });
    Some(Status {
        code: i32::try_from(code).unwrap_or(i32::MAX),
        reason,
        message,
    })
}

/// What a relay sends on a receive stream.
#[derive(Debug)]
pub(crate) enum ServerFrame {
    /// A message, with the stream id it says it is for.
    Message(Option<StreamId>, Payload),
    /// An error; the relay closes the socket after it.
    Error(Status),
}

/// Reads a frame a relay sent; the error says what was wrong without quoting the frame.
pub(crate) fn decode_server_frame(text: &str) -> Result<ServerFrame, String> {
    let value: Value =
        serde_json::from_str(text).map_err(|_| "the relay sent a frame that is not JSON")?;
    let object = value
        .as_object()
        .ok_or("the relay sent a frame that is not a JSON object")?;
    if let Some(error) = object.get("error") {
        return decode_status(error)
            .map(ServerFrame::Error)
            .ok_or_else(|| "the relay sent a malformed error".to_string());
    }
    let result = object
        .get("result")
        .ok_or("the relay sent a frame with neither result nor error")?;
    let result = result
        .as_object()
        .ok_or("the relay sent a result that is not an object")?;
    let id = match field(result, "desc", "desc") {
        Some(value) => Some(desc(value, "desc").map_err(|s| s.message)?),
        None => None,
    };
    let msg = bytes_field(result, "msg", "msg", "msg")
        .map_err(|s| s.message)?
        .unwrap_or_default();
    Ok(ServerFrame::Message(id, Payload::new(msg)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> StreamId {
        StreamId::new([7u8; 64])
    }

    #[test]
    fn payload_debug_hides_the_bytes() {
        let payload = Payload::new(b"attack at dawn".to_vec());
        let shown = format!(
            "{payload:?} {:?}",
            ServerFrame::Message(None, payload.clone())
        );
        assert!(!shown.contains("attack"), "{shown}");
        assert!(
            !shown.contains(&encode_base64(b"attack at dawn")),
            "{shown}"
        );
        assert!(shown.contains("14 bytes"));
    }

    #[test]
    fn requests_round_trip() {
        assert_eq!(parse_box_auth(&encode_box_auth(&id())).ok(), Some(id()));
        assert_eq!(parse_box_desc(&encode_box_desc(&id())).ok(), Some(id()));
        let (sid, msg) = parse_cipher_box(&encode_cipher_box(&id(), b"hi")).unwrap();
        assert_eq!(sid, Some(id()));
        assert_eq!(msg.as_bytes(), b"hi");
    }

    #[test]
    fn protojson_leniency() {
        let b64url = LENIENT_URL_SAFE.encode([0xfbu8; 64]);
        let text = format!(
            r#"{{"desc": {{"streamId": "{}"}}}}"#,
            b64url.trim_end_matches('=')
        );
        assert_eq!(parse_box_auth(&text).ok(), Some(StreamId::new([0xfb; 64])));
        let (sid, msg) = parse_cipher_box(r#"{"desc": null, "msg": null}"#).unwrap();
        assert_eq!(sid, None);
        assert!(msg.as_bytes().is_empty());
    }

    #[test]
    fn errors_name_the_field_and_do_not_quote_input() {
        let short = encode_base64(&[1u8; 63]);
        let err = parse_box_desc(&format!(r#"{{"stream_id": "{short}"}}"#)).unwrap_err();
        assert_eq!(err.code, 3);
        assert!(err.message.contains("64 bytes, not 63"), "{}", err.message);

        let err = parse_cipher_box(r#"{"msg": "secret-but-not-base64!!"}"#).unwrap_err();
        assert!(err.message.contains("msg is not valid base64"));
        assert!(!err.message.contains("secret"));

        let err = parse_cipher_box(r#"{"msg": 5}"#).unwrap_err();
        assert!(err.message.contains("msg must be a base64 string"));

        let err = parse_json("{\"msg\": \"secret").unwrap_err();
        assert!(!err.message.contains("secret"), "{}", err.message);

        let err = parse_box_auth(r#"{"desc": {}, "lnd_auth": 3}"#).unwrap_err();
        assert!(err.message.contains("lnd_auth"));
        assert!(parse_box_auth("[]").is_err());
    }

    #[test]
    fn error_frames_carry_the_reason() {
        let status = Status::new(Reason::StreamOccupied, "read stream occupied");
        let frame = encode_error_frame(&status);
        match decode_server_frame(&frame) {
            Ok(ServerFrame::Error(decoded)) => assert_eq!(decoded, status),
            other => panic!("{other:?}"),
        }
        let value: Value = serde_json::from_str(&encode_status(&status)).unwrap();
        assert_eq!(decode_status(&value), Some(status));
    }

    #[test]
    fn result_frames_decode() {
        let frame = encode_result(&encode_base64(id().as_bytes()), &Payload::new(vec![1, 2]));
        match decode_server_frame(&frame) {
            Ok(ServerFrame::Message(Some(sid), msg)) => {
                assert_eq!(sid, id());
                assert_eq!(msg.as_bytes(), &[1, 2]);
            }
            other => panic!("{other:?}"),
        }
        assert!(decode_server_frame("nope").is_err());
        assert!(decode_server_frame(r#"{"other": 1}"#).is_err());
    }
}
