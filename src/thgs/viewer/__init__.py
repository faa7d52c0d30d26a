"""The web viewer: a pure state -> image core (:mod:`thgs.viewer.core`) and its viser GUI (:mod:`thgs.viewer.app`)."""
