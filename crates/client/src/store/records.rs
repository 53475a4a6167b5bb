//! What the store keeps, by kind: each record type names its kind once, so a record cannot be
//! read as another kind's type.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Tx;
use crate::error::Result;

/// A value kept sealed in the store under `(KIND, id)`.
pub trait Record: Serialize + DeserializeOwned {
    const KIND: &'static str;
}

impl Tx<'_> {
    pub fn load<R: Record>(&self, id: &str) -> Result<Option<R>> {
        self.get(R::KIND, id)
    }

    pub fn save<R: Record>(&self, id: &str, value: &R) -> Result<()> {
        self.put(R::KIND, id, value)
    }

    pub fn remove<R: Record>(&self, id: &str) -> Result<()> {
        self.delete(R::KIND, id)
    }

    pub fn load_all<R: Record>(&self) -> Result<Vec<(String, R)>> {
        self.all(R::KIND)
    }
}
