"""The job folder stage: generated/<name>/ as the one contract between build and every backend (folder.py; its
training data, MLTable and request rows: data.py), and Azure ML job YAMLs written by hand (job_yaml.py, validate.py)."""

from capc.jobfolder.folder import ComputeCluster, JobFile, JobFolder, is_job_folder, is_sweep, read_job_folder

__all__ = ["ComputeCluster", "JobFile", "JobFolder", "is_job_folder", "is_sweep", "read_job_folder"]
