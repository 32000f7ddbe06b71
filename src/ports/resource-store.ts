/** Content-addressed storage for outputs over 64 KiB, referred to as res://sha256/<hex>. */
export interface ResourceRef {
  $resource: string;
  size: number;
  media_type: string;
}

export interface ResourceStore {
  put(data: Uint8Array, mediaType: string): Promise<ResourceRef>;
  /** Undefined when the ref is unknown; throws on a malformed ref. */
  get(ref: string): Promise<{ data: Uint8Array; mediaType: string } | undefined>;
}
