"""Task relationships: which tasks help each other (gradient statistics, task affinity).

Plain torch, usable without Lightning; the callbacks in `mtlscene.callbacks` record
these quantities during training.
"""
