"""The comparison harness: does MTL beat STL and the usual baselines on this data?"""
