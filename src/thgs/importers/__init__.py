"""Importers of other tools' subject layouts: TalkingAvatar (read in place or converted) and SHOW tracker
output (``final_all.pkl``). Importing this package registers the TalkingAvatar layout with
:func:`thgs.data.subject.open_subject`.
"""

from thgs.importers import talkingavatar as _talkingavatar  # noqa: F401  (registers the layout)
