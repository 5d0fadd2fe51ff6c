import sys

print("reading the data")
sys.exit("boom: the data is not there")
