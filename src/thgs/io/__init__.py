"""Reading and writing media: video decoding/encoding (:mod:`thgs.io.video`) and audio (:mod:`thgs.io.audio_io`)."""
