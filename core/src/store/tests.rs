//! Unit tests of the store (written next).
