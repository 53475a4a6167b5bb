//! A safety number as a QR code (SVG drawn on the server, no script), for comparing in person.

use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};

/// The SVG of a QR code holding `text`, or `None` if it does not fit one.
pub fn svg(text: &str) -> Option<String> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M).ok()?;
    Some(code.render::<svg::Color<'_>>().min_dimensions(240, 240).quiet_zone(true).build())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_safety_number_fits_and_draws_only_shapes() {
        let svg = super::svg("12345 67890 12345 67890 12345 67890").unwrap_or_default();
        assert!(svg.contains("<svg") && svg.contains("<path"), "{svg}");
        assert!(!svg.contains("<script") && !svg.contains("style="), "{svg}");
    }
}
