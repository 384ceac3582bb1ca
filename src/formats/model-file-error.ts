/**
 * A checkpoint (or other model file) is missing, truncated or malformed.
 *
 * The message is a complete one-line description meant for the user (it already names the file and,
 * where relevant, the tensor); `file` and `tensor` repeat them for programmatic use.
 */
export class ModelFileError extends Error {
  constructor(
    message: string,
    readonly file?: string,
    readonly tensor?: string,
  ) {
    super(message);
    this.name = "ModelFileError";
  }
}
