"""The application's atomic writer is the fusion library's (one behaviour: mode 0644 under the usual umask, never a
partial file)."""

from fusion._io import atomic_write, write_bytes_atomic, write_json_atomic, write_text_atomic

__all__ = ["atomic_write", "write_bytes_atomic", "write_json_atomic", "write_text_atomic"]
