//! Status update UUIDs: 16 raw bytes of an RFC 4122 UUID, never the 36-character text form
//! (which real Mesos refuses with `400 Not a valid UUID`).

/// A fresh random (version 4) UUID for a new status update.
pub fn new_update_uuid() -> Vec<u8> {
    uuid::Uuid::new_v4().as_bytes().to_vec()
}

/// Whether `bytes` is what Mesos accepts as a status update UUID. stout's `UUID::fromBytes`
/// wants exactly 16 bytes whose version nibble (high half of byte 6) boost recognises: 1 to 5.
pub fn is_valid_update_uuid(bytes: &[u8]) -> bool {
    bytes.len() == 16 && (1..=5).contains(&(bytes[6] >> 4))
}

/// The canonical text form, for logs.
pub fn display(bytes: &[u8]) -> String {
    match uuid::Uuid::from_slice(bytes) {
        Ok(id) => id.to_string(),
        Err(_) => format!("<{} invalid bytes>", bytes.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_uuids_are_16_byte_v4() {
        let id = new_update_uuid();
        assert_eq!(id.len(), 16);
        assert_eq!(id[6] >> 4, 4, "version nibble");
        assert!(is_valid_update_uuid(&id));
        assert!(!is_valid_update_uuid(
            b"6b9ae63c-4fae-4a14-987e-e31823ab4ea8"
        ));
        assert!(!is_valid_update_uuid(&[0u8; 16]), "version nibble 0");
        let mut v1 = id.clone();
        v1[6] = 0x1f;
        assert!(is_valid_update_uuid(&v1));
        assert_ne!(new_update_uuid(), id);
    }
}
