//! Connection URIs as QR codes for a terminal.

use qrcode::render::unicode::Dense1x2;
use qrcode::{EcLevel, QrCode};

use crate::error::NwcError;

/// Renders `data` (a connection URI) as a QR code of Unicode half blocks, two modules per
/// character cell, with a quiet zone, for printing in a terminal. It is drawn for the usual
/// dark terminal background: dark modules are blank cells, light ones are blocks.
pub fn render_qr_terminal(data: &str) -> Result<String, NwcError> {
    let code = QrCode::with_error_correction_level(data.as_bytes(), EcLevel::L)
        .map_err(|e| NwcError::Config(format!("cannot encode a QR code: {e}")))?;
    Ok(code
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_uri() {
        let uri = format!(
            "nostr+walletconnect://{}?relay=ws%3A%2F%2F127.0.0.1%3A7777&secret={}",
            "a".repeat(64),
            "b".repeat(64)
        );
        let qr = render_qr_terminal(&uri).unwrap();
        let lines: Vec<&str> = qr.lines().collect();
        assert!(lines.len() > 20, "{} lines", lines.len());
        let width = lines[0].chars().count();
        assert!(lines.iter().all(|l| l.chars().count() == width));
        // Too much data for any QR version is an error, not a panic.
        assert!(render_qr_terminal(&"x".repeat(10_000)).is_err());
    }
}
