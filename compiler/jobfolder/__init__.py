"""The job folder stage: generated/<name>/ as the one contract between build and every backend (folder.py; its
training data, MLTable and request rows: data.py; its serving files - endpoint.yml, deployment.yml, environment.yml,
sample_request.json: serving.py), and Azure ML job YAMLs written by hand (job_yaml.py, validate.py). No module outside
this folder names a job-folder file (tests/layout/test_job_folder_reader.py)."""

from capc.jobfolder.folder import ComputeCluster, JobFile, JobFolder, is_job_folder, is_sweep, read_job_folder

__all__ = ["ComputeCluster", "JobFile", "JobFolder", "is_job_folder", "is_sweep", "read_job_folder"]
