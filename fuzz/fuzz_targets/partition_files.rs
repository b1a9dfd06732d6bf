//! Recovery, the index checks and reads on arbitrary partition files: segments, offset and
//! time indexes and a checkpoint cut from the input (see `brook_log::fuzzing::open_and_read`),
//! on the simulated disk. Whatever the bytes, opening and reading must not panic or allocate
//! beyond their bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    brook_log::fuzzing::open_and_read(data);
});
