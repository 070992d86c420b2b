"""SPOS supernet training (:mod:`.train`), its config (:mod:`.config`) and run folder (:mod:`.run`)."""
