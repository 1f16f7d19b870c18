//! Why a record could not be read or published: typed, each saying whether trying again can
//! help.

use contract::{MappingError, SchemaError, codec};

use crate::kafka::{HandleError, ProduceError};
use crate::registry::RegistryError;

/// Why a record could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("the record has no value")]
    NoValue,
    #[error("not in Confluent's Avro wire format (magic byte 0, then a 4-byte schema id)")]
    NotConfluent,
    /// The registry cannot say which schema the record was written with.
    #[error("cannot look up writer schema {id}: {source}")]
    Registry {
        id: u32,
        #[source]
        source: RegistryError,
    },
    #[error("writer schema {id}: {source}")]
    WriterSchema {
        id: u32,
        #[source]
        source: SchemaError,
    },
    /// The bytes are not a datum of the schema they name.
    #[error("the datum does not match schema {id}: {source}")]
    Malformed {
        id: u32,
        #[source]
        source: codec::DecodeError,
    },
    /// It decoded, but breaks a rule of the domain (an invalid email, a negative count).
    #[error("the record breaks the contract: {0}")]
    Contract(#[from] MappingError),
}

impl DecodeError {
    /// Only a registry that cannot answer now may answer later; every other failure is in the
    /// record itself.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Registry { source, .. } if source.is_retryable())
    }
}

/// Why a record could not be published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("cannot encode the record: {0}")]
    Encode(#[from] MappingError),
    #[error(transparent)]
    Produce(#[from] ProduceError),
}

impl PublishError {
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Encode(_) => false,
            Self::Produce(error) => error.is_retryable(),
        }
    }
}

/// A registry or a broker that may answer later is an outage, not the record's fault.
impl From<DecodeError> for HandleError {
    fn from(error: DecodeError) -> Self {
        if error.is_retryable() { Self::unavailable(error) } else { Self::permanent(error) }
    }
}

impl From<PublishError> for HandleError {
    fn from(error: PublishError) -> Self {
        if error.is_retryable() { Self::unavailable(error) } else { Self::permanent(error) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_registry_outage_makes_a_decode_failure_worth_a_retry() {
        let outage = DecodeError::Registry {
            id: 7,
            source: RegistryError::Failed { what: "find".into(), status: 503, message: "down".into() },
        };
        let unknown = DecodeError::Registry {
            id: 7,
            source: RegistryError::Refused { what: "find".into(), status: 404, code: 40403, message: "no".into() },
        };
        assert!(outage.is_retryable());
        assert!(matches!(HandleError::from(outage), HandleError::Unavailable(_)), "never dead-lettered");
        for permanent in [unknown, DecodeError::NotConfluent, DecodeError::Contract(MappingError::new("version", "-1"))]
        {
            assert!(!permanent.is_retryable(), "{permanent}");
            assert!(matches!(HandleError::from(permanent), HandleError::Permanent(_)));
        }
    }
}
