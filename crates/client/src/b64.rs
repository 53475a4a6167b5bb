//! Byte strings as base64 text inside JSON (arrays of numbers would triple their size).

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use serde::{Deserialize, Deserializer, Serializer};

pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&STANDARD_NO_PAD.encode(bytes))
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    STANDARD_NO_PAD.decode(String::deserialize(d)?).map_err(serde::de::Error::custom)
}
