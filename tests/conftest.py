import os
os.environ.setdefault('HF_HUB_OFFLINE', '1')        # nothing downloads at run time, tests included
os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
