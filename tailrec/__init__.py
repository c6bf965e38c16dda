"""tailrec: serving long-tail users of a recommender with a pretrained text encoder.

The package holds the core that the course notebooks call: data loading
(:mod:`tailrec.data`), splits and user segments, item and user texts and
their encoder, the bilinear model and its training, metrics and evaluation,
checkpoints, plots, and the ``tailrec`` command that runs the course.
"""

import logging

__version__ = "0.1.0"

# The library never configures logging; applications decide what to show.
logging.getLogger(__name__).addHandler(logging.NullHandler())
