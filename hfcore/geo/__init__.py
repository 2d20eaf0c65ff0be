"""Fine-grained species classification with location and date (paper Tables 2 and 8).

``data`` reads iNaturalist 2017, 2018, 2021 and YFCC100M-GEO100 in their public formats,
``encoding`` turns location and date into Dynamic MLP's features, ``models`` puts HyperFuse and
the Table 2 baselines on any torchvision backbone, ``recipe`` contains the training recipe, and
``experiment.run_geo`` trains and evaluates one model.
"""
