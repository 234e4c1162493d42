//! Importers of auth state from other WhatsApp libraries (issue 4).
